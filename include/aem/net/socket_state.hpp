// net/socket_state.hpp — SocketState: one readiness change of a socket, as on_state reports it.
#pragma once

#include <cstdint>
#include <poll.h>
#include <system_error>

namespace aem {

// SocketState is one readiness change of a socket.
//
// Example:
//   aem::on_state(socket, POLLIN, [](aem::SocketState s) { if (s.readable()) drain(); });
struct SocketState {
  std::uint32_t revents = 0;  // the poll(2) bits
  std::error_code error;      // the socket's pending error when revents has POLLERR
  bool readable() const noexcept { return (revents & (POLLIN | POLLPRI)) != 0; }
  bool writable() const noexcept { return (revents & POLLOUT) != 0; }
  bool peer_closed() const noexcept { return (revents & (POLLRDHUP | POLLHUP)) != 0; }
  bool failed() const noexcept { return (revents & POLLERR) != 0; }
};

}  // namespace aem
