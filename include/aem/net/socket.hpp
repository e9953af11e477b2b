// net/socket.hpp — Socket: what every aem socket shares. It owns the descriptor (move-only,
// closed on destruction), and lets any capsule or thread cancel the calls blocked on it or
// close it under them.
#pragma once

#include <aem/detail/shared_fd.hpp>
#include <aem/export.hpp>
#include <aem/net/address.hpp>
#include <aem/result.hpp>

#include <cstddef>

namespace aem {

// Socket is the base of TcpStream, UnixStream, TcpListener, UnixListener and UdpSocket; it is
// not used on its own. Descriptors are created non-blocking and close-on-exec.
//
// Blocking calls of the derived classes (read, accept, connect, recv_from, …) suspend only the
// calling capsule; from a plain thread they return errc::not_in_capsule. Several capsules may
// use one socket at once (say one reading and one writing), on any cores.
//
// Cancellation: cancel() makes every call in flight on the socket return errc::cancelled
// (unless it completed first) and leaves the socket usable: a cancelled read consumed nothing.
// close() does the same and then closes the descriptor — once the cancelled calls have let go
// of it; later calls fail with std::errc::bad_file_descriptor. Both are safe from any capsule
// or thread while other capsules block on the socket; destroying or moving the object is not
// (close() from the other side, let the blocked calls return, then destroy).
//
// Example:
//   // capsule A:                                  // capsule B, on any core:
//   auto n = stream.read(buffer);                  stream.cancel();
//   if (n.error() == aem::errc::cancelled) { /* stream still usable */ }
class AEM_EXPORT Socket {
 public:
  Socket(Socket&&) noexcept = default;
  Socket& operator=(Socket&&) noexcept = default;

  // fd returns the descriptor, or -1 once closed or released. Any thread.
  int fd() const noexcept { return fd_.get(); }
  // is_open reports whether the socket still owns a descriptor. Any thread.
  bool is_open() const noexcept { return fd() >= 0; }

  // local_address returns the address the socket is bound to (getsockname). Any thread.
  // Errors: the errno of getsockname (bad_file_descriptor once closed).
  Result<SocketAddress> local_address() const;

  // set_send_buffer / set_receive_buffer set SO_SNDBUF / SO_RCVBUF (the kernel doubles the
  // value and clamps it to its limits). Any thread. Errors: the errno of setsockopt.
  Result<void> set_send_buffer(std::size_t bytes);
  Result<void> set_receive_buffer(std::size_t bytes);
  // set_option is setsockopt for an int-valued option the class does not wrap. Any thread.
  Result<void> set_option(int level, int name, int value);
  // option is getsockopt for an int-valued option. Any thread.
  Result<int> option(int level, int name) const;

  // cancel makes the calls in flight on this socket return errc::cancelled; calls started
  // afterwards are not affected. Any capsule or thread.
  void cancel() noexcept;
  // close cancels the calls in flight and closes the descriptor (when they have let go of it).
  // Idempotent. Any capsule or thread. Errors: the errno of ::close.
  Result<void> close() noexcept;
  // release gives up ownership: returns the descriptor and leaves the socket closed without
  // closing it. Returns -1 (and keeps the descriptor) while calls are in flight. Any thread.
  int release() noexcept { return fd_.release(); }

 protected:
  Socket() noexcept = default;
  explicit Socket(int fd) noexcept : fd_(fd) {}
  ~Socket() = default;

  detail::SharedFd& shared_fd() noexcept { return fd_; }

 private:
  detail::SharedFd fd_;
};

// BindOptions are the options set on a socket before it binds.
struct BindOptions {
  int backlog = 1024;          // listeners: the accept queue (the kernel caps it at somaxconn)
  bool reuse_address = true;   // SO_REUSEADDR: rebind at once after a restart (TIME_WAIT)
  bool reuse_port = false;     // SO_REUSEPORT: several sockets share the port (one per core)
};

}  // namespace aem
