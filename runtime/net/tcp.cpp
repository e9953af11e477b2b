// tcp.cpp — TcpStream and TcpListener: the TCP-only parts (connect, TCP options).
#include "runtime/net/happy_eyeballs.hpp"
#include "runtime/net/socket_io.hpp"

#include <aem/net/resolve.hpp>
#include <aem/net/tcp.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace aem {

Result<TcpStream> TcpStream::connect(const SocketAddress& address, Deadline deadline) {
  if (!detail::is_ip(address)) return errc::invalid_argument;
  Result<int> fd = detail::connect_socket(address, SOCK_STREAM, deadline);
  if (!fd) return fd.error();
  return TcpStream(*fd);
}

Result<TcpStream> TcpStream::connect(std::span<const SocketAddress> addresses, Deadline deadline,
                                     const ConnectOptions& options) {
  Result<int> fd = detail::connect_first(addresses, deadline, options.attempt_delay);
  if (!fd) return fd.error();
  return TcpStream(*fd);
}

Result<TcpStream> TcpStream::connect(std::string_view host, std::uint16_t port, Deadline deadline,
                                     const ConnectOptions& options) {
  Result<std::vector<SocketAddress>> addresses = resolve(host, port, {.deadline = deadline});
  if (!addresses) return addresses.error();
  return connect(*addresses, deadline, options);
}

Result<TcpListener> TcpListener::adopt(int fd) {
  Result<int> adopted = adopt_fd(fd, true);
  if (!adopted) return adopted.error();
  return TcpListener(*adopted);
}

Result<void> TcpStream::set_nodelay(bool on) { return set_option(IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0); }

Result<void> TcpStream::set_keepalive(bool on, std::chrono::seconds idle) {
  if (on) {
    if (idle.count() < 1 || idle.count() > 32767) return errc::invalid_argument;  // the kernel's range
    if (Result<void> set = set_option(IPPROTO_TCP, TCP_KEEPIDLE, static_cast<int>(idle.count())); !set) return set;
  }
  return set_option(SOL_SOCKET, SO_KEEPALIVE, on ? 1 : 0);
}

Result<TcpListener> TcpListener::bind(const SocketAddress& address, const BindOptions& options) {
  if (!detail::is_ip(address)) return errc::invalid_argument;
  Result<int> fd = open(address, options);
  if (!fd) return fd.error();
  return TcpListener(*fd);
}

}  // namespace aem
