// socket.cpp — Socket: options, addresses, cancel and close, common to every socket class.
#include "runtime/net/socket_io.hpp"

#include <aem/net/socket.hpp>

#include <sys/socket.h>

#include <climits>

namespace aem {

Result<SocketAddress> Socket::local_address() const { return detail::socket_address(fd(), false); }

Result<void> Socket::set_option(int level, int name, int value) {
  return detail::sys_result(::setsockopt(fd(), level, name, &value, sizeof value));
}

Result<int> Socket::option(int level, int name) const {
  int value = 0;
  socklen_t length = sizeof value;
  if (::getsockopt(fd(), level, name, &value, &length) != 0) return errno_code(errno);
  return value;
}

Result<void> Socket::set_send_buffer(std::size_t bytes) {
  if (bytes > INT_MAX) return errc::invalid_argument;
  return set_option(SOL_SOCKET, SO_SNDBUF, static_cast<int>(bytes));
}

Result<void> Socket::set_receive_buffer(std::size_t bytes) {
  if (bytes > INT_MAX) return errc::invalid_argument;
  return set_option(SOL_SOCKET, SO_RCVBUF, static_cast<int>(bytes));
}

void Socket::cancel() noexcept { fd_.cancel(); }

Result<void> Socket::close() noexcept {
  if (const int error = fd_.close(); error != 0) return errno_code(error);
  return {};
}

}  // namespace aem
