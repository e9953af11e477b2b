// udp.cpp — UdpSocket.
#include "runtime/net/socket_io.hpp"

#include <aem/net/udp.hpp>

#include <sys/socket.h>

namespace aem {
namespace {

// receive waits for one datagram through recvmsg. MSG_TRUNC makes the result the datagram's
// real length, so truncation shows without relying on msg_flags (which not every backend
// copies back).
Result<Datagram> receive(detail::SharedFd& socket, std::span<std::byte> buffer, bool want_sender, Deadline deadline) {
  sockaddr_storage sender{};
  iovec vector{buffer.data(), buffer.size()};
  msghdr message{};
  message.msg_iov = &vector;
  message.msg_iovlen = 1;
  if (want_sender) {
    message.msg_name = &sender;
    message.msg_namelen = sizeof sender;
  }
  Result<std::size_t> received = detail::socket_message(socket, detail::IoOpcode::recvmsg, &message, MSG_TRUNC, deadline);
  if (!received) return received.error();
  Datagram datagram;
  const std::size_t size = *received;
  datagram.truncated = size > buffer.size();
  datagram.size = datagram.truncated ? buffer.size() : size;
  if (want_sender) {
    // sockaddr_in/in6 lengths follow from the family; from_sockaddr only needs the length
    // to be large enough, so an unreported msg_namelen does no harm.
    if (Result<SocketAddress> from = SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&sender), sizeof sender)) {
      datagram.from = *from;
    }
  }
  return datagram;
}

Result<std::size_t> send_datagram(detail::SharedFd& socket, std::span<const std::byte> data, const SocketAddress* to,
                                  Deadline deadline) {
  SocketAddress target = to != nullptr ? *to : SocketAddress();  // lives until the completion
  iovec vector{const_cast<std::byte*>(data.data()), data.size()};
  msghdr message{};
  message.msg_iov = &vector;
  message.msg_iovlen = 1;
  if (to != nullptr) {
    message.msg_name = const_cast<sockaddr*>(target.data());
    message.msg_namelen = target.size();
  }
  return detail::socket_message(socket, detail::IoOpcode::sendmsg, &message, MSG_NOSIGNAL, deadline);
}

}  // namespace

Result<UdpSocket> UdpSocket::bind(const SocketAddress& address, const BindOptions& options) {
  if (!detail::is_ip(address)) return errc::invalid_argument;
  Result<int> fd = detail::bind_socket(address, SOCK_DGRAM, options.reuse_address, options.reuse_port);
  if (!fd) return fd.error();
  return UdpSocket(*fd);
}

Result<void> UdpSocket::connect(const SocketAddress& peer) {
  if (!detail::is_ip(peer)) return errc::invalid_argument;
  return detail::sys_result(::connect(fd(), peer.data(), peer.size()));
}

Result<std::size_t> UdpSocket::send_to(std::span<const std::byte> data, const SocketAddress& to, Deadline deadline) {
  if (!detail::is_ip(to)) return errc::invalid_argument;
  return send_datagram(shared_fd(), data, &to, deadline);
}

Result<Datagram> UdpSocket::recv_from(std::span<std::byte> buffer, Deadline deadline) {
  return receive(shared_fd(), buffer, true, deadline);
}

Result<std::size_t> UdpSocket::send(std::span<const std::byte> data, Deadline deadline) {
  return send_datagram(shared_fd(), data, nullptr, deadline);
}

Result<Datagram> UdpSocket::recv(std::span<std::byte> buffer, Deadline deadline) {
  return receive(shared_fd(), buffer, false, deadline);
}

}  // namespace aem
