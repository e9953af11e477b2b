// The upgrade without downtime of the README, in a whole program: a server that takes its
// listener over from the process offering it on the hand-over path (or binds it on a first
// start), offers it there in turn, and drains when a successor accepts on it or on SIGTERM.
//   upgrade_without_downtime /run/app/handover.sock
#include <aem/capsule.hpp>
#include <aem/gate.hpp>
#include <aem/handover.hpp>
#include <aem/net.hpp>
#include <aem/runtime.hpp>
#include <aem/signal.hpp>
#include <aem/wait_group.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <string>
#include <utility>

using namespace std::chrono_literals;

void serve(aem::TcpStream stream, aem::Gate& gate) {
  auto pass = gate.enter(stream);
  if (!pass) return;
  std::array<std::byte, 4096> request;
  while (pass->idle()) {
    auto n = stream.read(request);
    if (!n || *n == 0) return;
    pass->busy();
    if (!stream.write_all(std::span(request).first(*n))) return;
  }
}

// readme-begin
int run(const std::string& handover_path, aem::Gate& gate) {
  std::atomic<bool> stopping = false;
  aem::WaitGroup stop(1);
  auto stop_once = [&] { if (!stopping.exchange(true)) stop.done(); };
  if (!aem::on_signal(SIGTERM, stop_once)) return 1;
  // Ask the running server (if any) for its listener; a successor's taking over stops us.
  auto handover = aem::Handover::claim({.path = handover_path,
                                        .on_handed_over = [&](const aem::HandoverPeer&) { stop_once(); }});
  if (!handover) {                                    // busy (another successor), not allowed, …
    std::fprintf(stderr, "%s\n", handover.error().message().c_str());
    return 1;
  }
  // The same kernel socket as the running server's, or a fresh one on a first start.
  auto listener = handover->tcp_listener("echo", aem::SocketAddress::ipv4_loopback(7000));
  if (!listener) return 1;
  aem::Gate accepting;                                // closing it stops accepting
  if (!accepting.close_with(*listener)) return 1;
  auto acceptor = aem::spawn([&] {
    while (auto stream = listener->accept()) {
      auto connection = aem::spawn([&gate, s = std::move(*stream)]() mutable { serve(std::move(s), gate); });
      if (connection) connection->detach();
    }
  });
  if (!acceptor) return 1;
  if (!handover->ready()) return 1;                   // the predecessor stops accepting now
  stop.wait();                                        // SIGTERM, or our successor accepts
  accepting.close();                                  // what is queued is the successor's
  acceptor->join();
  (void)gate.drain(10s);                              // finish the requests in flight
  return 0;
}
// readme-end

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s HANDOVER_PATH\n", argv[0]);
    return 2;
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  if (::pthread_sigmask(SIG_BLOCK, &signals, nullptr) != 0) return 1;
  aem::Gate gate;  // outlives the runtime: its capsules give their passes back to it
  aem::Runtime rt(aem::Config{.cores = 2});
  return rt.run([&] { return run(argv[1], gate); });
}
