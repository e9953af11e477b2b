// listener.cpp — ListenerSocket: bind + listen, and accept, for TCP and Unix listeners.
#include "runtime/net/socket_io.hpp"

#include <aem/net/listener.hpp>

#include <sys/socket.h>

namespace aem {

Result<int> ListenerSocket::open(const SocketAddress& address, const BindOptions& options) {
  if (options.backlog < 0) return errc::invalid_argument;
  Result<int> fd = detail::bind_socket(address, SOCK_STREAM, options.reuse_address, options.reuse_port);
  if (!fd) return fd;
  detail::SharedFd owner(*fd);
  if (::listen(*fd, options.backlog) != 0) return errno_code(errno);
  return owner.release();
}

Result<int> ListenerSocket::accept_fd(Deadline deadline, SocketAddress* peer) {
  sockaddr_storage storage{};
  socklen_t length = sizeof storage;
  detail::IoRequest request;
  request.opcode = detail::IoOpcode::accept;
  request.flags = SOCK_NONBLOCK | SOCK_CLOEXEC;
  request.address = reinterpret_cast<sockaddr*>(&storage);
  request.address_length = &length;
  Result<int> fd = detail::socket_perform(shared_fd(), request, deadline);
  if (fd && peer != nullptr) {
    // An unnamed Unix peer has an address of just the family; from_sockaddr takes that too.
    if (Result<SocketAddress> address = SocketAddress::from_sockaddr(request.address, length)) *peer = *address;
  }
  return fd;
}

}  // namespace aem
