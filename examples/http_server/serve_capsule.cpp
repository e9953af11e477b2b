// serve_capsule.cpp — the capsule style: an accept loop that starts one capsule per connection,
// round-robin over the cores; the capsule runs Session::serve in blocking style.
#include "session.hpp"
#include "styles.hpp"
#include "tls_serve.hpp"

#include <aem/capsule.hpp>
#include <aem/error.hpp>

#include <chrono>
#include <cstdio>
#include <system_error>

namespace http {
namespace {

// accept_loop accepts until the server drains. It runs on the same core as the capsule that
// sets Server::draining, so the flag cannot change between its check and the accept call.
void accept_loop(aem::TcpListener& listener, Server& server) {
  const unsigned cores = aem::this_core::count();
  for (unsigned next = 0; !server.draining.load(std::memory_order_relaxed);) {
    auto stream = listener.accept();
    if (!stream) {
      // Out of descriptors is not an error here: accept pauses and retries by itself.
      if (stream.error() != aem::errc::cancelled) std::fprintf(stderr, "http_server: accept: %s\n", stream.error().message().c_str());
      return;
    }
    (void)stream->set_nodelay(true);
    if (!server.admit()) {
      refuse(*stream);
      continue;
    }
    auto connection = aem::spawn(
        [s = std::move(*stream), admission = Admission(server), &server]() mutable {
          if (server.config.tls.valid()) return serve_tls_capsule(std::move(s), std::move(admission), server);
          auto pass = server.gate.enter(s);  // the shutdown cancels the connection at its deadline
          if (!pass) return;                 // the server drains: dropped
          Session session(s, std::move(admission), server);
          session.serve();
        },
        {.core = next});
    next = (next + 1) % cores;
    if (connection) connection->detach();
    else std::fprintf(stderr, "http_server: spawn: %s (connection dropped)\n", connection.error().message().c_str());
  }
}

}  // namespace

void serve_capsules(aem::TcpListener& listener, Server& server, aem::WaitGroup& stop) {
  auto acceptor = aem::spawn([&] { accept_loop(listener, server); });
  if (!acceptor) {
    std::fprintf(stderr, "http_server: spawn: %s\n", acceptor.error().message().c_str());
    return;
  }
  stop.wait();
  listener.cancel();  // a blocked accept returns errc::cancelled
  acceptor->join();
}

}  // namespace http
