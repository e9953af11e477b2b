// The graceful drain of the README, in a whole program: a capsule per connection, stopped by
// SIGTERM (or, here, when the first client has been answered).
#include <aem/capsule.hpp>
#include <aem/gate.hpp>
#include <aem/net.hpp>
#include <aem/runtime.hpp>
#include <aem/signal.hpp>
#include <aem/wait_group.hpp>

#include <array>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <utility>

using namespace std::chrono_literals;

// readme-begin
// One capsule per connection; its pass is idle while it waits for a request.
void serve(aem::TcpStream stream, aem::Gate& gate) {
  auto pass = gate.enter(stream);
  if (!pass) return;                                  // the server drains: refused
  std::array<std::byte, 4096> request;
  while (pass->idle()) {                              // false once the drain began
    auto n = stream.read(request);                    // a drain ends this wait with 0
    if (!n || *n == 0) return;
    pass->busy();                                     // a drain lets this finish
    if (!stream.write_all(std::span(request).first(*n))) return;
  }
}

int run(aem::TcpListener& listener, aem::Gate& gate, aem::WaitGroup& stop) {
  // Take SIGTERM before serving: it starts the drain.
  if (!aem::on_signal(SIGTERM, [&stop, fired = false]() mutable {
        if (!std::exchange(fired, true)) stop.done();   // the first one counts
      })) {
    return 1;
  }
  if (!gate.close_with(listener)) return 1;          // the drain closes the listener
  auto acceptor = aem::spawn([&] {
    while (auto stream = listener.accept()) {
      auto connection = aem::spawn([&gate, s = std::move(*stream)]() mutable { serve(std::move(s), gate); });
      if (connection) connection->detach();
    }
  });
  if (!acceptor) return 1;
  stop.wait();
  auto report = gate.drain(10s);                      // stop accepting, finish, cancel at 10 s
  if (report) std::printf("%zu finished, %zu cancelled\n", report->finished, report->cancelled);
  acceptor->join();
  return 0;
}
// readme-end

int main() {
  auto listener = aem::TcpListener::bind(aem::SocketAddress::ipv4_loopback(0));
  if (!listener) return 1;
  aem::Gate gate;            // outlives the runtime: its capsules give their passes back to it
  aem::WaitGroup stop(1);
  aem::Runtime rt(aem::Config{.cores = 1});
  return rt.run([&] {
    // The demonstration's own client: one request, then the same stop as a SIGTERM would make.
    auto client = aem::spawn([&] {
      auto stream = aem::TcpStream::connect(*listener->local_address());
      if (!stream || !stream->write_all(std::as_bytes(std::span("ping", 4)))) return;
      std::array<std::byte, 4> echo;
      (void)stream->read_exact(echo, 5s);
      stop.done();
    });
    return run(*listener, gate, stop) + (client ? 0 : 1);
  });
}
