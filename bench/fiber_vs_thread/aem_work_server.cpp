// aem_work_server.cpp — aem's side of bench/fiber_vs_thread: the same request workload as the
// thread baselines (workload.hpp: spin, then sleep, then the reply), served on one aem core in
// one of two styles:
//   capsule       a capsule per connection, written like the thread-per-connection server
//                 (blocking read, work, write) — the sleep suspends the capsule, not the thread;
//   registration  on_accept + an on_data registration per connection (Executor::keepalive):
//                 a connection between requests holds no capsule at all.
// Flags and stop signals come from bench/load/common.hpp like every baseline's, so the script
// drives all servers alike.
//
// usage: aem_work_server [--port N] [--style capsule|registration] [workload flags]
#include <aem/capsule.hpp>
#include <aem/fd_io.hpp>
#include <aem/net.hpp>
#include <aem/net/events.hpp>
#include <aem/runtime.hpp>

#include <array>
#include <memory>
#include <span>
#include <string_view>

#include "../load/common.hpp"
#include "../load/workload.hpp"

namespace {

constexpr const char* kUsage =
    "usage: aem_work_server [--port N] [--style capsule|registration] [--cpu-us N] [--sleep-us N]\n"
    "                       [--spin-per-us X] [--request-bytes N] [--calibrate]\n"
    "aem on one core, 127.0.0.1: a capsule per connection (capsule, the default) or on_accept +\n"
    "on_data registrations (registration); each request costs --cpu-us of spin and --sleep-us of\n"
    "capsule sleep before its reply (bench/fiber_vs_thread/README.md). Stops on SIGINT/SIGTERM.";

// Sized for the largest request the client sends many of at once; it lives on the capsule's
// 64 KiB stack, of which an idle connection touches only the pages this buffer spans.
constexpr std::size_t kReadBufferBytes = 4 * 1024;

// do_requests does the work of `count` requests. Call from a capsule: the sleep suspends it.
void do_requests(const aem_load::Workload& work, std::size_t count) {
  for (; count > 0; --count) {
    work.burn_cpu();
    if (work.sleep.count() > 0) aem::this_capsule::sleep_for(work.sleep);
  }
}

// serve_connection is the capsule of one connection in the capsule style.
void serve_connection(aem::TcpStream stream, const aem_load::Workload& work) {
  std::array<std::byte, kReadBufferBytes> buffer;
  aem_load::RequestCounter requests(work.request_bytes);
  while (auto got = stream.read(buffer)) {
    if (*got == 0) return;
    do_requests(work, requests.complete(*got));
    if (!stream.write_all(std::span(buffer).first(*got))) return;
  }
}

// accept_capsules accepts until the listener closes and spawns a capsule per connection.
void accept_capsules(aem::TcpListener& listener, const aem_load::Workload& work) {
  for (;;) {
    auto stream = listener.accept();
    if (!stream) {
      if (stream.error() != aem::errc::cancelled) std::fprintf(stderr, "accept: %s\n", stream.error().message().c_str());
      return;
    }
    (void)stream->set_nodelay(true);
    auto connection = aem::spawn([s = std::move(*stream), &work]() mutable { serve_connection(std::move(s), work); });
    if (connection) connection->detach();
    else std::fprintf(stderr, "spawn: %s (connection dropped)\n", connection.error().message().c_str());
  }
}

// Connection is what a registration-style connection keeps between its requests.
struct Connection {
  aem::TcpStream stream;
  aem_load::RequestCounter requests;
};

// watch registers the requests of one connection; the handler owns the connection, so the
// stream closes when the peer does and the registration ends.
void watch(aem::TcpStream accepted, const aem_load::Workload& work) {
  (void)accepted.set_nodelay(true);
  auto connection = std::make_shared<Connection>(Connection{std::move(accepted), aem_load::RequestCounter(work.request_bytes)});
  auto id = aem::on_data(
      connection->stream,
      [connection, &work](aem::EventData bytes) {
        do_requests(work, connection->requests.complete(bytes.size()));
        (void)connection->stream.write_all(bytes.bytes());
      },
      {.exec = aem::Executor::keepalive});  // one request at a time per connection, in order
  if (!id) std::fprintf(stderr, "on_data: %s (connection dropped)\n", id.error().message().c_str());
}

// accept_registrations registers the accepting; the registration runs until it is cancelled.
aem::Result<aem::EventId> accept_registrations(aem::TcpListener& listener, const aem_load::Workload& work) {
  return aem::on_accept(
      listener, [&work](aem::TcpStream stream) { watch(std::move(stream), work); },
      {.on_error = [](std::error_code error) { std::fprintf(stderr, "accept paused: %s\n", error.message().c_str()); }});
}

// wait_for_stop suspends the calling capsule until the stop signal's descriptor is readable.
void wait_for_stop(int signal_fd) {
  std::array<std::byte, sizeof(signalfd_siginfo)> info;
  (void)aem::read(signal_fd, info);
}

}  // namespace

int main(int argc, char** argv) {
  aem_load::Args args(argc, argv, kUsage);
  const int port = args.port();
  const std::string_view style = args.text("--style", "capsule");
  const aem_load::Workload work = aem_load::parse_workload(args);
  args.done();
  const char* program = args.program();
  if (style != "capsule" && style != "registration") {
    aem_load::usage_error(program, "--style wants capsule or registration, got '" + std::string(style) + "'");
  }
  aem_load::raise_fd_limit(program);
  const aem_load::StopSignals stop(program);  // before the core thread, which inherits the mask
  auto listener = aem::TcpListener::bind(aem::SocketAddress::ipv4_loopback(static_cast<std::uint16_t>(port)));
  if (!listener) {
    std::fprintf(stderr, "%s: cannot listen on 127.0.0.1:%d: %s\n", program, port, listener.error().message().c_str());
    return EXIT_FAILURE;
  }
  aem::Runtime runtime(aem::Config{.cores = 1});
  std::fprintf(stderr, "%s: listening on 127.0.0.1:%d, style %s\n", program, port, std::string(style).c_str());
  const bool ok = runtime.run([&] {
    if (style == "registration") {
      auto accepting = accept_registrations(*listener, work);
      if (!accepting) {
        std::fprintf(stderr, "%s: on_accept: %s\n", program, accepting.error().message().c_str());
        return false;
      }
      wait_for_stop(stop.fd());
      (void)aem::cancel(*accepting);
      return true;
    }
    auto acceptor = aem::spawn([&] { accept_capsules(*listener, work); });
    if (!acceptor) {
      std::fprintf(stderr, "%s: spawn: %s\n", program, acceptor.error().message().c_str());
      return false;
    }
    wait_for_stop(stop.fd());
    (void)listener->close();  // the blocked accept ends with errc::cancelled
    acceptor->join();
    return true;
  });  // returning unwinds the connections still open
  return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}
