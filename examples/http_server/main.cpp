// http_server — an HTTP/1.1 server on aem: keep-alive, pipelining, Content-Length and chunked
// request bodies, static files under --root, GET /hello, POST /echo; limits and timeouts
// against slow or hostile clients; graceful shutdown on SIGINT / SIGTERM; with --handover PATH,
// an upgrade without downtime (the next server started with the same PATH takes the listener
// over and this one drains). See README.md.
//
//   aem_http_server --port 8080 --root ./public --style registration
//   curl http://127.0.0.1:8080/hello
#include "connections.hpp"
#include "handover_listener.hpp"
#include "options.hpp"
#include "server.hpp"
#include "stop_signals.hpp"
#include "styles.hpp"

#include <aem/capsule.hpp>
#include <aem/cross_core.hpp>
#include <aem/net/tcp.hpp>
#include <aem/runtime.hpp>
#include <aem/wait_group.hpp>

#include <algorithm>
#include <chrono>
#include <optional>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <string_view>
#include <unistd.h>

namespace {

// sweep_period is how often each core looks for connections past their deadline: a quarter of
// the shortest timeout, so a timeout is late by at most a quarter of itself.
aem::Duration sweep_period(const http::ServerConfig& config) {
  const aem::Duration shortest =
      std::min({config.header_timeout, config.request_timeout, config.idle_timeout, config.send_timeout, config.linger});
  return std::clamp<aem::Duration>(shortest / 4, std::chrono::milliseconds(10), std::chrono::seconds(1));
}

// kKeepAliveGrace is how long, after a successor took over, a kept-alive connection may take to
// send its next request: it is answered with "Connection: close" (the client then reconnects, to
// the successor) instead of being closed under a request already on its way.
constexpr aem::Duration kKeepAliveGrace = std::chrono::seconds(1);

// run_server is the root capsule: serve until a signal or a successor's taking over, then stop
// accepting, end the idle connections and drain the others through the server's gate: they
// answer what they read, and those still open after `shutdown_timeout` are cancelled.
int run_server(const aem::SocketAddress& address, std::string_view handover_path, http::Server& server,
               const http::Style& style, http::StopSignals& signals, aem::Duration shutdown_timeout) {
  if (!signals.take()) return 1;
  std::optional<http::Listening> listening = http::open_listener(address, handover_path, signals);
  if (!listening) return 1;
  aem::TcpListener& listener = listening->listener;
  std::printf("listening on %s\n", listener.local_address()->to_string().c_str());
  std::fflush(stdout);
  if (auto swept = http::start_sweepers(server, sweep_period(server.config)); !swept) {
    std::fprintf(stderr, "http_server: cannot start the timeout sweepers: %s\n", swept.error().message().c_str());
    return 1;
  }
  aem::WaitGroup stop(1);
  auto acceptor = aem::spawn([&] { style.serve(listener, server, stop); });
  if (!acceptor) {
    std::fprintf(stderr, "http_server: spawn: %s\n", acceptor.error().message().c_str());
    return 1;
  }
  if (!http::offer_to_successors(*listening)) {
    stop.done();
    acceptor->join();
    return 1;
  }
  const http::Stop why = signals.wait();
  if (why.successor != 0) std::fprintf(stderr, "http_server: pid %d took the listener over: draining\n", why.successor);
  else if (why.signo != 0) std::fprintf(stderr, "http_server: %s: stopping\n", ::strsignal(why.signo));
  stop.done();
  acceptor->join();
  // Closing our descriptor leaves a handed-over socket (and its accept queue) to the successor.
  (void)listener.close();
  // The connections accepted until now reach their cores and start their sessions before the
  // drain begins (each core's mailbox is in order: a task submitted now runs after them), so a
  // late one is answered, with "Connection: close", instead of being closed unread.
  for (unsigned core = 0; core < aem::this_core::count(); ++core) (void)aem::submit(core, [] {});
  server.draining.store(true);
  if (why.successor != 0) (void)server.open_connections.wait(std::min(shutdown_timeout, kKeepAliveGrace));
  http::drain_all_cores();  // the idle keep-alive connections: only the sessions know which
  auto report = server.gate.drain(shutdown_timeout);
  if (report && report->cancelled > 0) {
    std::fprintf(stderr, "http_server: %zu connections still open after the shutdown timeout: cancelled\n",
                 report->cancelled);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  http::Options options;
  if (const int status = http::parse_options(argc, argv, options); status >= 0) return status;
  const http::Style& style = *http::find_style(options.style);
  auto address = aem::SocketAddress::parse(options.host, options.port);
  if (!address) return http::bad_usage("bad value for --host: '" + std::string(options.host) + "'");
  if (!options.root.empty()) {
    options.server.root_fd = ::open(std::string(options.root).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (options.server.root_fd < 0) {
      return http::bad_usage("bad value for --root: '" + std::string(options.root) + "': " + std::strerror(errno));
    }
  }
  auto signals = http::StopSignals::block();  // before the cores start: they inherit the mask
  if (!signals) {
    std::fprintf(stderr, "http_server: cannot take SIGINT and SIGTERM: %s\n", signals.error().message().c_str());
    return 1;
  }

  // With --handover each response names its process, so a client sees who answered.
  const std::string server_name = "aem (pid " + std::to_string(::getpid()) + ")";
  if (!options.handover.empty()) options.server.server_name = server_name;
  http::Server server(options.server);
  aem::Config config;
  config.cores = options.cores;
  config.coalesce_window = std::chrono::microseconds(options.coalesce_us);
  config.idle_spin = std::chrono::microseconds(options.idle_spin_us);
  aem::Runtime rt(config);
  std::fprintf(stderr, "http_server: style %.*s, %u cores\n", static_cast<int>(style.name.size()), style.name.data(),
               rt.cores());
  const int status = rt.run(
      [&] { return run_server(*address, options.handover, server, style, *signals, options.shutdown_timeout); });
  if (options.server.root_fd >= 0) ::close(options.server.root_fd);
  std::fprintf(stderr, "http_server: %s backend; %llu connections accepted, %llu refused, %llu timed out\n",
               std::string(rt.backend_name()).c_str(), static_cast<unsigned long long>(server.accepted.load()),
               static_cast<unsigned long long>(server.refused.load()),
               static_cast<unsigned long long>(server.timed_out.load()));
  return status;
}
