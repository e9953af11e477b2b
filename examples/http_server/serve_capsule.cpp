// serve_capsule.cpp — the capsule style: an accept loop that starts one capsule per connection,
// round-robin over the cores; the capsule runs Session::serve in blocking style.
#include "session.hpp"
#include "styles.hpp"

#include <aem/capsule.hpp>
#include <aem/error.hpp>

#include <chrono>
#include <cstdio>
#include <system_error>

namespace http {
namespace {

// out_of_descriptors reports the accept errors that pass when connections close.
bool out_of_descriptors(std::error_code error) {
  return error == std::errc::too_many_files_open || error == std::errc::too_many_files_open_in_system ||
         error == std::errc::not_enough_memory || error == std::errc::no_buffer_space;
}

// accept_loop accepts until the server drains. It runs on the same core as the capsule that
// sets Server::draining, so the flag cannot change between its check and the accept call.
void accept_loop(aem::TcpListener& listener, Server& server) {
  const unsigned cores = aem::this_core::count();
  for (unsigned next = 0; !server.draining.load(std::memory_order_relaxed);) {
    auto stream = listener.accept();
    if (!stream) {
      if (!out_of_descriptors(stream.error())) {
        if (stream.error() != aem::errc::cancelled) std::fprintf(stderr, "http_server: accept: %s\n", stream.error().message().c_str());
        return;
      }
      aem::this_capsule::sleep_for(std::chrono::milliseconds(10));  // until connections close
      continue;
    }
    (void)stream->set_nodelay(true);
    if (!server.admit()) {
      refuse(*stream);
      continue;
    }
    auto connection = aem::spawn(
        [s = std::move(*stream), admission = Admission(server), &server]() mutable {
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
