// unix.cpp — UnixStream and UnixListener: the Unix-domain-only parts.
#include "runtime/net/socket_io.hpp"

#include <aem/net/unix.hpp>

#include <sys/socket.h>

namespace aem {

Result<UnixStream> UnixStream::connect(const SocketAddress& address, Deadline deadline) {
  if (address.family() != AddressFamily::local) return errc::invalid_argument;
  Result<int> fd = detail::connect_socket(address, SOCK_STREAM, deadline);
  if (!fd) return fd.error();
  return UnixStream(*fd);
}

Result<std::pair<UnixStream, UnixStream>> UnixStream::pair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) return errno_code(errno);
  return std::pair<UnixStream, UnixStream>(UnixStream(fds[0]), UnixStream(fds[1]));
}

Result<UnixListener> UnixListener::bind(const SocketAddress& address, const BindOptions& options) {
  if (address.family() != AddressFamily::local) return errc::invalid_argument;
  Result<int> fd = open(address, options);
  if (!fd) return fd.error();
  return UnixListener(*fd);
}

Result<UnixListener> UnixListener::adopt(int fd) {
  Result<int> adopted = adopt_fd(fd, false);
  if (!adopted) return adopted.error();
  return UnixListener(*adopted);
}

}  // namespace aem
