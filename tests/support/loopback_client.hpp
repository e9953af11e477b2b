// loopback_client.hpp — the plain-socket side of tests that talk to a server program over
// loopback TCP: a blocking socket with hang guards, connected to 127.0.0.1, and a send loop.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace aem_test {

// guarded_tcp_socket opens a blocking TCP socket whose receives and sends give up after
// `guard_seconds` (SO_RCVTIMEO/SO_SNDTIMEO: a hang guard, not a timing check), with TCP_NODELAY,
// and SO_RCVBUF set to `receive_buffer` when it is positive. Returns -1 if socket() fails.
inline int guarded_tcp_socket(int guard_seconds, int receive_buffer = 0) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  timeval guard{guard_seconds, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &guard, sizeof guard);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &guard, sizeof guard);
  if (receive_buffer > 0) ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
  const int on = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  return fd;
}

// connect_loopback connects `fd` to 127.0.0.1:`port`; false if connect() fails.
inline bool connect_loopback(int fd, int port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
}

// send_all sends all of `data` on `fd` (no SIGPIPE); false if the connection is gone.
inline bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

}  // namespace aem_test
