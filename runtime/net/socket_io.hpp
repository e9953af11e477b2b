// socket_io.hpp — what the socket classes share underneath: issuing an operation on a socket's
// descriptor (cancellable through the socket), and the few system calls around it.
// Private to the library.
#pragma once

#include "io/backend.hpp"

#include <aem/detail/shared_fd.hpp>
#include <aem/net/address.hpp>
#include <aem/result.hpp>
#include <aem/time.hpp>

#include <cerrno>

namespace aem::detail {

// socket_perform issues `request` on `socket`'s descriptor from the calling capsule, so that
// SharedFd::cancel/close reach it, and waits for it. Returns the non-negative result or the
// error (errc::not_in_capsule, timed_out, cancelled, shutting_down, bad_file_descriptor once
// closed, or the operation's errno).
Result<int> socket_perform(SharedFd& socket, IoRequest request, Deadline deadline);

// socket_message issues a sendmsg or recvmsg (with MSG_* `flags`) of `message`, which must stay
// valid until it returns, and returns the byte count. Call from a capsule.
Result<std::size_t> socket_message(SharedFd& socket, IoOpcode opcode, msghdr* message, std::uint32_t flags,
                                   Deadline deadline);

// is_ip reports whether `address` is an IPv4 or IPv6 address.
inline bool is_ip(const SocketAddress& address) noexcept {
  return address.family() == AddressFamily::ipv4 || address.family() == AddressFamily::ipv6;
}

// open_socket creates a non-blocking, close-on-exec socket of `type` for `address`'s family.
// Errors: errc::invalid_argument for an empty address, the errno of socket(2).
Result<int> open_socket(const SocketAddress& address, int type);

// connect_socket opens a socket of `type` and connects it to `address` within `deadline`;
// returns the descriptor, which the caller owns. The caller has checked the family.
// Call from a capsule.
Result<int> connect_socket(const SocketAddress& address, int type, Deadline deadline);

// bind_socket opens a socket of `type`, sets the reuse options (IP only) and binds it. The
// caller has checked the family.
Result<int> bind_socket(const SocketAddress& address, int type, bool reuse_address, bool reuse_port);

// socket_address returns the local (getsockname) or peer (getpeername) address of `fd`.
Result<SocketAddress> socket_address(int fd, bool peer);

// sys_result turns a system call's 0 / -1 into Result<void>, reading errno.
inline Result<void> sys_result(int rc) {
  if (rc == 0) return {};
  return errno_code(errno);
}

}  // namespace aem::detail
