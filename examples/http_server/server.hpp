// server.hpp — what every connection of the HTTP server shares: its settings, the count of
// open connections and the drain flag of a graceful shutdown.
#pragma once

#include "http_parser.hpp"

#include <aem/gate.hpp>
#include <aem/time.hpp>
#include <aem/tls/context.hpp>
#include <aem/wait_group.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <utility>

namespace http {

using namespace std::chrono_literals;

// ServerConfig holds the limits and timeouts (see README.md for what each one bounds).
struct ServerConfig {
  Limits limits;
  // header_timeout: from a request's first byte to the end of its head.
  aem::Duration header_timeout = 10s;
  // request_timeout: from a request's first byte to the end of its body.
  aem::Duration request_timeout = 30s;
  // idle_timeout: how long a kept-alive connection may wait for its next request.
  aem::Duration idle_timeout = 60s;
  // send_timeout: how long one write to a client may stay blocked (a client that reads nothing).
  aem::Duration send_timeout = 30s;
  // linger: after the last response of a connection, how long its remaining input is read and
  // dropped before closing (closing with unread input would reset the connection and could
  // destroy that response before the client reads it).
  aem::Duration linger = 2s;
  std::size_t max_connections = 10000;
  int root_fd = -1;  // the directory of the static route; -1: no static route
  // server_name: the Server field of every response ("aem (pid N)" with --handover: a client
  // sees which process answered while one replaces another).
  std::string_view server_name = "aem";
  // tls: HTTPS when valid (--tls-cert, --tls-key); the handshake counts against header_timeout.
  aem::tls::Context tls;
};

// Server is shared by all cores; everything in it is safe to use from any of them.
struct Server {
  explicit Server(const ServerConfig& c) : config(c) {}

  // admit counts a new connection in, or refuses it (false) when max_connections are open.
  // Every admitted connection is let go with leave(), once. Any thread.
  bool admit() {
    if (static_cast<std::size_t>(open_connections.count()) >= config.max_connections) {
      refused.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    open_connections.add(1);
    accepted.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  void leave() { open_connections.done(); }

  const ServerConfig config;
  aem::WaitGroup open_connections;       // raised on accept, lowered when a connection ends
  std::atomic<bool> draining{false};     // a shutdown was asked for: finish requests, keep none alive
  // gate: each connection holds a pass naming its stream, so that the shutdown refuses late
  // connections, waits for the ones open and cancels those left at --shutdown-timeout.
  aem::Gate gate;
  std::atomic<std::uint64_t> accepted{0};
  std::atomic<std::uint64_t> refused{0};  // over max_connections
  std::atomic<std::uint64_t> timed_out{0};
};

// Admission is one admitted connection (Server::admit): destroying it lets the connection go,
// also when it never got to run (a hand-off to another core that failed).
class Admission {
 public:
  explicit Admission(Server& server) noexcept : server_(&server) {}
  Admission(Admission&& other) noexcept : server_(std::exchange(other.server_, nullptr)) {}
  Admission& operator=(Admission&&) = delete;
  Admission(const Admission&) = delete;
  Admission& operator=(const Admission&) = delete;
  ~Admission() {
    if (server_ != nullptr) server_->leave();
  }

 private:
  Server* server_;
};

}  // namespace http
