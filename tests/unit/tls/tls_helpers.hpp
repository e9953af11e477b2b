// tls_helpers.hpp — contexts from the test certificates and a TLS echo server, for the TLS tests.
#pragma once

#include "support/cores.hpp"
#include "support/net_helpers.hpp"
#include "unit/tls/test_certificates.hpp"

#include <aem/capsule.hpp>
#include <aem/net.hpp>
#include <aem/runtime.hpp>
#include <aem/tls.hpp>

#include <doctest/doctest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace tls_test {

using namespace std::chrono_literals;

inline aem::tls::Context server_context(const KeyPair& pair = certificates().server, std::vector<std::string> alpn = {},
                                        bool tickets = true) {
  auto context = aem::tls::Context::server({.credentials = {.certificate_chain_pem = pair.certificate_pem,
                                                            .private_key_pem = pair.key_pem},
                                            .alpn = std::move(alpn),
                                            .session_tickets = tickets});
  REQUIRE_MESSAGE(context, context.error().message());
  return std::move(*context);
}

inline aem::tls::Context client_context(std::vector<std::string> alpn = {}) {
  auto context = aem::tls::Context::client(
      {.trusted_cas = {.file = {}, .pem = certificates().ca.certificate_pem, .use_system_store = false},
       .alpn = std::move(alpn)});
  REQUIRE_MESSAGE(context, context.error().message());
  return std::move(*context);
}

// ServerLog counts what the echo server saw.
struct ServerLog {
  std::atomic<int> handshakes{0};
  std::atomic<int> failures{0};
  std::atomic<int> resumed{0};
  std::string last_error;     // of the last failed handshake
  std::string last_alpn;
};

// accept_tls accepts one connection on `listener` and runs the server handshake with `context`,
// each within `timeout` (a hang guard); fails the test, with OpenSSL's reason, if a step fails.
inline aem::tls::Stream accept_tls(aem::TcpListener& listener, const aem::tls::Context& context,
                                   std::chrono::milliseconds timeout = 10s) {
  auto tcp = listener.accept(timeout);
  REQUIRE(tcp);
  auto stream = aem::tls::Stream::server(context, std::move(*tcp));
  REQUIRE(stream);
  auto shaken = stream->handshake(timeout);
  REQUIRE_MESSAGE(shaken, shaken.error().message());
  return std::move(*stream);
}

// TlsListener is the server side of a test that drives the accepted streams itself: a loopback
// listener and a server context.
struct TlsListener {
  explicit TlsListener(aem::tls::Context server = server_context()) : context(std::move(server)) {}
  // accept takes one connection through accept_tls.
  aem::tls::Stream accept(std::chrono::milliseconds timeout = 10s) { return accept_tls(listener, context, timeout); }

  aem::TcpListener listener = aem_test::loopback_listener();
  std::uint16_t port = listener.local_address()->port();
  aem::tls::Context context;
};

// end_both_ways sends the stream's close_notify and checks that the peer answers with its own
// (a read of 0) within `timeout`.
inline void end_both_ways(aem::tls::Stream& stream, std::chrono::milliseconds timeout = 5s) {
  REQUIRE(stream.shutdown(5s));
  std::array<std::byte, 16> rest;
  auto end = stream.read(rest, timeout);
  CHECK((end && *end == 0));
}

// echo_connection runs a server handshake on `tcp` and echoes until the peer's close_notify,
// then answers with its own.
inline void echo_connection(const aem::tls::Context& context, aem::TcpStream tcp, ServerLog& log) {
  auto stream = aem::tls::Stream::server(context, std::move(tcp));
  if (!stream) return;
  if (auto shaken = stream->handshake(10s); !shaken) {
    log.last_error = shaken.error().message();
    log.failures.fetch_add(1);
    return;
  }
  log.handshakes.fetch_add(1);
  if (stream->resumed()) log.resumed.fetch_add(1);
  log.last_alpn = std::string(stream->alpn());
  std::array<std::byte, 16 * 1024> buffer;
  for (;;) {
    auto n = stream->read(buffer, 20s);
    if (!n || *n == 0) break;
    if (!stream->write_all(std::span(buffer).first(*n), 20s)) return;
  }
  (void)stream->shutdown(5s);
}

// EchoServer accepts `connections` TLS connections on a loopback port and echoes each in a
// capsule of its own.
struct EchoServer {
  aem::TcpListener listener = aem_test::loopback_listener();
  ServerLog log;

  std::uint16_t port() { return listener.local_address()->port(); }

  // start spawns the accept loop (from a capsule); it ends after `connections` accepts.
  aem::Capsule<void> start(aem::tls::Context context, int connections) {
    auto acceptor = aem::spawn([this, context, connections] {
      for (int i = 0; i < connections; ++i) {
        auto tcp = listener.accept(30s);
        if (!tcp) return;
        auto connection = aem::spawn([this, context, s = std::move(*tcp)]() mutable {
          echo_connection(context, std::move(s), log);
        });
        if (connection) connection->detach();
      }
    });
    REQUIRE(acceptor);
    return std::move(*acceptor);
  }
};

// run_with_echo runs `body(echo)` in a runtime of `cores` cores where an EchoServer takes
// `connections` connections with `context`, then waits for the server's accept loop to end.
template <typename Body>
void run_with_echo(unsigned cores, const aem::tls::Context& context, int connections, Body&& body) {
  aem::Runtime rt(aem_test::config_for(cores));
  rt.run([&] {
    EchoServer echo;
    auto acceptor = echo.start(context, connections);
    body(echo);
    acceptor.join();
  });
}

}  // namespace tls_test
