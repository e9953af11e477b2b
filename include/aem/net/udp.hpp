// net/udp.hpp — UdpSocket: datagrams over IPv4 or IPv6.
#pragma once

#include <aem/export.hpp>
#include <aem/net/address.hpp>
#include <aem/net/socket.hpp>
#include <aem/result.hpp>
#include <aem/time.hpp>

#include <cstddef>
#include <span>

namespace aem {

// Datagram describes one received datagram.
struct Datagram {
  std::size_t size = 0;    // bytes stored in the buffer
  bool truncated = false;  // the datagram was longer than the buffer; the rest is lost
  SocketAddress from;      // the sender (recv_from only)
};

// UdpSocket sends and receives datagrams. A move-only owner of its socket (see Socket for
// cancellation and concurrency). Errors of the blocking calls: errc::timed_out,
// errc::cancelled, errc::not_in_capsule, errc::shutting_down, or the errno of the system call
// (std::errc::connection_refused on a connected socket whose peer sent ICMP unreachable, …).
//
// Example (from a capsule):
//   auto socket = aem::UdpSocket::bind(aem::SocketAddress::ipv4_any(5353));
//   std::array<std::byte, 1500> buffer;
//   while (auto d = socket->recv_from(buffer)) (void)socket->send_to(std::span(buffer).first(d->size), d->from);
class AEM_EXPORT UdpSocket : public Socket {
 public:
  UdpSocket() noexcept = default;

  // bind creates a socket bound to `address` (port 0: the kernel picks one). Any thread.
  // Errors: errc::invalid_argument (not an IP address), the errno of socket/setsockopt/bind.
  // BindOptions::backlog does not apply.
  static Result<UdpSocket> bind(const SocketAddress& address, const BindOptions& options = {});

  // connect fixes the peer: send() goes there and only its datagrams are received. Not
  // blocking: any thread. Errors: errc::invalid_argument, the errno of connect.
  Result<void> connect(const SocketAddress& peer);

  // send_to sends `data` as one datagram to `to` and returns the bytes sent. Call from a capsule.
  Result<std::size_t> send_to(std::span<const std::byte> data, const SocketAddress& to, Deadline deadline = {});
  // recv_from waits for one datagram. Call from a capsule.
  Result<Datagram> recv_from(std::span<std::byte> buffer, Deadline deadline = {});

  // send / recv are send_to / recv_from for a connected socket. Call from a capsule.
  Result<std::size_t> send(std::span<const std::byte> data, Deadline deadline = {});
  Result<Datagram> recv(std::span<std::byte> buffer, Deadline deadline = {});

 private:
  explicit UdpSocket(int fd) noexcept : Socket(fd) {}
};

}  // namespace aem
