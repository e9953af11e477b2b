#include "runtime/net/socket_io.hpp"

#include "runtime/fdio/io_result.hpp"
#include "runtime/fdio/io_wait.hpp"
#include "runtime/sched/core.hpp"

#include <sys/socket.h>
#include <unistd.h>

namespace aem::detail {

Result<int> socket_perform(SharedFd& socket, IoRequest request, Deadline deadline) {
  IoCancelSlot slot;
  request.fd = socket.enter(&slot);
  if (slot.capsule == nullptr) return Core::suspension_refused();  // inline handler: counted
  if (request.fd < 0) return errno_code(EBADF);
  const int result = perform(request, deadline, &slot);
  socket.leave(&slot);
  if (result >= 0) return result;
  return io_error(result, deadline, slot.requested.load(std::memory_order_acquire));
}

Result<std::size_t> socket_message(SharedFd& socket, IoOpcode opcode, msghdr* message, std::uint32_t flags,
                                   Deadline deadline) {
  IoRequest request;
  request.opcode = opcode;
  request.message = message;
  request.flags = flags;
  Result<int> result = socket_perform(socket, request, deadline);
  if (!result) return result.error();
  return static_cast<std::size_t>(*result);
}

Result<int> open_socket(const SocketAddress& address, int type) {
  if (address.family() == AddressFamily::none) return errc::invalid_argument;
  const int fd = ::socket(address.os_family(), type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno_code(errno);
  return fd;
}

Result<int> connect_socket(const SocketAddress& address, int type, Deadline deadline) {
  Result<int> fd = open_socket(address, type);
  if (!fd) return fd;
  SharedFd owner(*fd);  // closes the socket if the connect fails
  IoRequest request;
  request.opcode = IoOpcode::connect;
  // The kernel reads the address when the operation starts, possibly after submit returns;
  // the copy lives in this frame until the completion.
  SocketAddress target = address;
  request.address = const_cast<sockaddr*>(target.data());
  request.address_size = target.size();
  if (Result<int> connected = socket_perform(owner, request, deadline); !connected) return connected.error();
  return owner.release();
}

Result<int> bind_socket(const SocketAddress& address, int type, bool reuse_address, bool reuse_port) {
  Result<int> fd = open_socket(address, type);
  if (!fd) return fd;
  SharedFd owner(*fd);
  const bool local = address.family() == AddressFamily::local;
  const int on = 1;
  if (!local && reuse_address && ::setsockopt(*fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0) return errno_code(errno);
  if (!local && reuse_port && ::setsockopt(*fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0) return errno_code(errno);
  if (::bind(*fd, address.data(), address.size()) != 0) return errno_code(errno);
  return owner.release();
}

Result<SocketAddress> socket_address(int fd, bool peer) {
  sockaddr_storage storage{};
  socklen_t length = sizeof storage;
  auto* address = reinterpret_cast<sockaddr*>(&storage);
  if ((peer ? ::getpeername(fd, address, &length) : ::getsockname(fd, address, &length)) != 0) return errno_code(errno);
  return SocketAddress::from_sockaddr(address, length);
}

}  // namespace aem::detail
