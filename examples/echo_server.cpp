// echo_server — a TCP echo server on the loopback interface, in two styles:
//   capsule       every connection gets its own capsule that reads and writes as if it had a
//                 thread of its own (blocking style);
//   registration  AEM-style: an on_accept registration, and per connection an on_data
//                 registration whose handler echoes the bytes; an idle connection holds no
//                 capsule and no buffer, only its registration.
// SIGINT / SIGTERM drain it: accepting ends, idle connections are closed, an echo being
// written is finished (up to --drain-ms, then cancelled), and the server exits 0.
// With --handover PATH an upgrade needs no downtime: a new echo_server started with the same
// PATH takes the listening socket over (aem::Handover) and this one drains as on SIGTERM.
//
//   echo_server --port 7000 --cores 2 --style registration
//   (in another terminal)  nc 127.0.0.1 7000
//
// A serving style is one entry in kStyles; each gets the parsed options and a running
// runtime's root capsule.
#include <aem/capsule.hpp>
#include <aem/cross_core.hpp>
#include <aem/gate.hpp>
#include <aem/handover.hpp>
#include <aem/net.hpp>
#include <aem/net/buffered_stream.hpp>
#include <aem/net/events.hpp>
#include <aem/runtime.hpp>
#include <aem/signal.hpp>
#include <aem/wait_group.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

namespace {

struct Options {
  std::uint16_t port = 7000;
  unsigned cores = 0;  // 0: one per CPU
  std::string_view style = "capsule";
  long idle_spin_us = -1;  // -1: Config's default
  long coalesce_us = 0;    // Config::coalesce_window; 0: off
  long drain_ms = 5000;    // on SIGINT/SIGTERM: how long echoes in flight may take to finish
  std::string_view handover;  // --handover PATH: take the listener over from the server there
};

// Stats are printed when the server stops.
struct Stats {
  std::atomic<std::uint64_t> connections{0};
  std::atomic<std::uint64_t> bytes{0};
};

// ---- style "capsule": one capsule per connection ------------------------------------------

// echo copies what the client sends back to it until the client closes its side. read_some
// hands over what one read brought, where it lies in the buffer: one read and one write per
// message, no copy.
// The connection holds a pass of the server's gate: idle while it waits for bytes (a drain
// ends that wait at once), busy while it echoes (a drain lets the echo finish).
void echo(aem::TcpStream stream, Stats& stats, aem::Gate& gate) {
  auto pass = gate.enter(stream);
  if (!pass) return;  // the server drains: no new connection
  aem::BufferedStream input(stream, {.read_capacity = 16 * 1024, .write_capacity = 0});
  while (pass->idle()) {  // false once the server drains: close instead of waiting
    auto bytes = input.read_some();
    if (!bytes || bytes->empty()) return;  // the client is done, or the drain ended the wait
    pass->busy();
    if (!stream.write_all(*bytes)) return;
    stats.bytes.fetch_add(bytes->size(), std::memory_order_relaxed);
  }
}

// serve_capsules accepts until the gate closes the listener, spreading connections over the cores.
void serve_capsules(aem::TcpListener& listener, Stats& stats, aem::Gate& gate, aem::Gate& accepting) {
  if (!accepting.close_with(listener)) return;
  const unsigned cores = aem::this_core::count();
  for (unsigned next = 0;; next = (next + 1) % cores) {
    auto stream = listener.accept();
    if (!stream) {  // out of descriptors is not an error: accept pauses and retries by itself
      if (!accepting.closed()) std::fprintf(stderr, "accept: %s\n", stream.error().message().c_str());
      return;
    }
    (void)stream->set_nodelay(true);
    stats.connections.fetch_add(1, std::memory_order_relaxed);
    auto connection = aem::spawn([s = std::move(*stream), &stats, &gate]() mutable { echo(std::move(s), stats, gate); },
                                 {.core = next});
    if (connection) connection->detach();
    else std::fprintf(stderr, "spawn: %s (connection dropped)\n", connection.error().message().c_str());
  }
}

// ---- style "registration": AEM-style event registrations -----------------------------------

// Connection is what a registration-style connection's handler keeps alive: the stream and its
// pass of the server's gate, idle between receives (the handler never waits), so a drain shuts
// the stream's reading side at once and the registration ends at the end of its input.
struct Connection {
  explicit Connection(aem::TcpStream accepted) : stream(std::move(accepted)) {}
  aem::TcpStream stream;
  aem::Gate::Pass pass;  // after the stream: it names it
};

// watch registers the echo of one connection on the calling core. The handler owns the stream:
// when the stream ends, the registration ends and destroying the handler closes it.
void watch(aem::TcpStream accepted, Stats& stats, aem::Gate& gate) {
  auto connection = std::make_shared<Connection>(std::move(accepted));
  auto pass = gate.enter(connection->stream);
  if (!pass || !pass->idle()) return;  // the server drains: no new connection
  connection->pass = std::move(*pass);
  aem::TcpStream* stream = &connection->stream;
  auto id = aem::on_data(
      *stream,
      [connection, stream, &stats](aem::EventData bytes) {
        // send() queues the bytes on the stream and returns: the handler never suspends, so it
        // can run inline on the core's dispatcher — no capsule, no stack, no switch per
        // message. A failed send surfaces here on the next call; the registration itself ends
        // when the peer goes.
        const std::size_t size = bytes.size();
        if (stream->send(std::move(bytes))) stats.bytes.fetch_add(size, std::memory_order_relaxed);
        // Bytes that raced the drain are echoed; then the connection ends with its input.
        if (connection->pass.closing()) (void)stream->shutdown(aem::Shutdown::read);
      },
      {.exec = aem::Executor::inline_handler});  // one at a time, in order: echoes stay in order
  if (!id) std::fprintf(stderr, "on_data: %s (connection dropped)\n", id.error().message().c_str());
}

// serve_registrations accepts through one registration and hands connections round-robin to
// the cores, each of which registers the connection's data handler. The registration lives on
// until the gate closes and cancels it.
void serve_registrations(aem::TcpListener& listener, Stats& stats, aem::Gate& gate, aem::Gate& accepting) {
  const unsigned cores = aem::this_core::count();
  unsigned next = 0;
  auto id = aem::on_accept(
      listener,
      [&](aem::TcpStream stream) {
        (void)stream.set_nodelay(true);
        stats.connections.fetch_add(1, std::memory_order_relaxed);
        const unsigned core = next;
        next = (next + 1) % cores;
        if (core == aem::this_core::id()) return watch(std::move(stream), stats, gate);
        auto handed = aem::post(core, [s = std::move(stream), &stats, &gate]() mutable { watch(std::move(s), stats, gate); });
        if (!handed) std::fprintf(stderr, "post: %s (connection dropped)\n", handed.error().message().c_str());
      },
      // Inline: the handler never suspends (an option, a post, a registration), and a burst of
      // connections then costs no capsule each — fresh capsules would grow the pool by one per
      // connection accepted in the same turn.
      {.exec = aem::Executor::inline_handler,
       .on_error = [](std::error_code error) { std::fprintf(stderr, "accept paused: %s\n", error.message().c_str()); }});
  if (!id) {
    std::fprintf(stderr, "on_accept: %s\n", id.error().message().c_str());
    return;
  }
  if (!accepting.close_with(*id)) (void)aem::cancel(*id);
}

// ---- the styles and the common frame -------------------------------------------------------

struct Style {
  std::string_view name;
  std::string_view description;
  // serve starts accepting; closing `accepting` stops it (serve returns when accepting has
  // started, or, for a loop, when it has ended). Connections hold passes of `gate`.
  void (*serve)(aem::TcpListener& listener, Stats& stats, aem::Gate& gate, aem::Gate& accepting);
};

constexpr Style kStyles[] = {
    {"capsule", "one capsule per connection, blocking-style read/write", &serve_capsules},
    {"registration", "on_accept + one on_data registration per connection (no idle capsule)", &serve_registrations},
};

const Style* find_style(std::string_view name) {
  for (const Style& style : kStyles) {
    if (style.name == name) return &style;
  }
  return nullptr;
}

void usage(std::FILE* out) {
  std::fprintf(out,
               "usage: echo_server [--port N] [--cores N] [--style NAME] [--idle-spin-us N] [--coalesce-us N]\n"
               "                   [--drain-ms N] [--handover PATH] [--help]\n"
               "  --port N      TCP port on 127.0.0.1 (default 7000; 0 picks a free one)\n"
               "  --cores N     scheduler cores (default: one per CPU)\n"
               "  --idle-spin-us N\n"
               "                the longest an idle core polls before it sleeps (Config::idle_spin,\n"
               "                default 20; it adapts below that; 0 sleeps at once)\n"
               "  --coalesce-us N\n"
               "                after a busy stretch, let completions accumulate up to N us before\n"
               "                the core wakes for them (Config::coalesce_window, default 0: off):\n"
               "                less CPU per message under load, up to N us more latency\n"
               "  --drain-ms N  on SIGINT/SIGTERM, how long echoes being written may take to finish\n"
               "                before they are cancelled (default 5000)\n"
               "  --handover PATH\n"
               "                take the listener from the echo_server offering it on the Unix socket\n"
               "                PATH (if one runs), offer it there to the next one, and drain once that\n"
               "                one accepts: an upgrade without downtime\n"
               "  --style NAME  how connections are served:\n");
  for (const Style& style : kStyles) {
    std::fprintf(out, "                  %-12.*s %.*s\n", static_cast<int>(style.name.size()), style.name.data(),
                 static_cast<int>(style.description.size()), style.description.data());
  }
  std::fprintf(out,
               "On SIGINT or SIGTERM it stops accepting, closes idle connections, lets echoes being\n"
               "written finish (up to --drain-ms), and exits 0.\n");
}

template <typename T>
bool parse_number(std::string_view text, T& out) {
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
  return error == std::errc() && end == text.data() + text.size();
}

// parse_options returns -1 to go on, else the exit status.
int parse_options(int argc, char** argv, Options& options) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      usage(stdout);
      return 0;
    }
    if (arg != "--port" && arg != "--cores" && arg != "--style" && arg != "--idle-spin-us" &&
        arg != "--coalesce-us" && arg != "--drain-ms" && arg != "--handover") {
      std::fprintf(stderr, "echo_server: unknown option %s\n\n", argv[i]);
      usage(stderr);
      return 2;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "echo_server: %s needs a value\n\n", argv[i]);
      usage(stderr);
      return 2;
    }
    const std::string_view value = argv[++i];
    bool ok = false;
    if (arg == "--port") ok = parse_number(value, options.port);
    else if (arg == "--cores") ok = parse_number(value, options.cores) && options.cores <= 1024;
    else if (arg == "--idle-spin-us") ok = parse_number(value, options.idle_spin_us) && options.idle_spin_us >= 0 && options.idle_spin_us <= 1'000'000;
    else if (arg == "--coalesce-us") ok = parse_number(value, options.coalesce_us) && options.coalesce_us >= 0 && options.coalesce_us <= 1'000'000;
    else if (arg == "--drain-ms") ok = parse_number(value, options.drain_ms) && options.drain_ms >= 0 && options.drain_ms <= 3'600'000;
    else if (arg == "--handover") {
      options.handover = value;
      ok = !value.empty() && value.front() != '@';
    } else if (arg == "--style") {
      options.style = value;
      ok = find_style(value) != nullptr;
    }
    if (!ok) {
      if (arg == "--style") std::fprintf(stderr, "echo_server: unknown style '%s'\n\n", argv[i]);
      else std::fprintf(stderr, "echo_server: bad value for %s: '%s'\n\n", argv[i - 1], argv[i]);
      usage(stderr);
      return 2;
    }
  }
  return -1;
}

// StopRequest is set by the first SIGINT or SIGTERM (aem::on_signal handlers) or by a
// successor's taking over the listener (--handover); it lives in main, so a signal that comes
// while the runtime stops finds it.
struct StopRequest {
  std::atomic<int> signo{0};
  std::atomic<std::int32_t> successor{0};
  std::atomic<bool> stopped{false};
  aem::WaitGroup signalled{1};

  // stop records the first reason only.
  void stop(int signal, std::int32_t successor_pid) {
    if (stopped.exchange(true)) return;
    signo.store(signal);
    successor.store(successor_pid);
    signalled.done();
  }
};

// Listening is the listener, and the Handover that offers it to a successor (--handover).
struct Listening {
  aem::TcpListener listener;
  std::optional<aem::Handover> handover;
};

// open_listener binds 127.0.0.1:port, or takes the listener named "echo" over from the server
// offering it on options.handover (a first start binds it). Call from a capsule. Prints why
// and returns nothing on failure.
std::optional<Listening> open_listener(const Options& options, StopRequest& stop) {
  const aem::SocketAddress address = aem::SocketAddress::ipv4_loopback(options.port);
  Listening listening;
  aem::Result<aem::TcpListener> listener = aem::errc::invalid_argument;
  if (options.handover.empty()) {
    listener = aem::TcpListener::bind(address);
  } else {
    aem::HandoverOptions handover_options;
    handover_options.path = std::string(options.handover);
    handover_options.on_handed_over = [&stop](const aem::HandoverPeer& successor) { stop.stop(0, successor.pid); };
    auto handover = aem::Handover::claim(std::move(handover_options));
    if (!handover) {
      std::fprintf(stderr, "echo_server: cannot take over from the server on %s: %s\n",
                   std::string(options.handover).c_str(), handover.error().message().c_str());
      return std::nullopt;
    }
    listener = handover->tcp_listener("echo", address);
    listening.handover.emplace(std::move(*handover));
  }
  if (!listener) {
    std::fprintf(stderr, "echo_server: cannot listen on 127.0.0.1:%u: %s\n", options.port,
                 listener.error().message().c_str());
    return std::nullopt;
  }
  listening.listener = std::move(*listener);
  return listening;
}

// take_signals registers `stop` for SIGINT and SIGTERM. Call before serving: a signal that the
// runtime reads before its registration is armed has nobody to go to. False if the signals
// cannot be taken.
bool take_signals(StopRequest& stop) {
  for (const int signo : {SIGINT, SIGTERM}) {
    auto id = aem::on_signal(signo, [&stop](const aem::SignalInfo& info) {
      stop.stop(info.signo, 0);
    });
    if (!id) {
      std::fprintf(stderr, "echo_server: on_signal(%s): %s\n", ::strsignal(signo), id.error().message().c_str());
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (const int status = parse_options(argc, argv, options); status >= 0) return status;
  const Style& style = *find_style(options.style);

  // Block the signals before any thread exists (threads inherit the mask): one that comes
  // before aem::on_signal takes it then waits instead of ending the process.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  if (::pthread_sigmask(SIG_BLOCK, &signals, nullptr) != 0) return 1;

  Stats stats;
  aem::Config config;
  config.cores = options.cores;
  if (options.idle_spin_us >= 0) config.idle_spin = std::chrono::microseconds(options.idle_spin_us);
  config.coalesce_window = std::chrono::microseconds(options.coalesce_us);
  aem::Runtime rt(config);
  aem::Gate gate;  // outlives the runtime: connections give their passes back until it stops
  StopRequest stop;
  const int status = rt.run([&] {
    if (!take_signals(stop)) return 1;
    std::optional<Listening> listening = open_listener(options, stop);
    if (!listening) return 1;
    aem::TcpListener& listener = listening->listener;
    std::printf("echo_server: listening on %s, style %.*s, %u cores\n", listener.local_address()->to_string().c_str(),
                static_cast<int>(style.name.size()), style.name.data(), rt.cores());
    std::fflush(stdout);
    aem::Gate accepting;  // closing it stops accepting (before the drain: see below)
    auto server = aem::spawn([&] { style.serve(listener, stats, gate, accepting); });
    if (!server) {
      std::fprintf(stderr, "spawn: %s\n", server.error().message().c_str());
      return 1;
    }
    if (listening->handover) {
      if (auto ready = listening->handover->ready(); !ready) {
        std::fprintf(stderr, "echo_server: cannot offer the listener for a hand-over: %s\n",
                     ready.error().message().c_str());
        stop.stop(SIGTERM, 0);
      }
    }
    stop.signalled.wait();
    if (stop.successor.load() != 0) std::printf("\necho_server: pid %d took the listener over: draining\n", stop.successor.load());
    else std::printf("\n%s: stopping\n", ::strsignal(stop.signo.load()));
    // Stop accepting first, and let the connections accepted until then reach their core and
    // enter the gate (each core's mailbox is in order: a task submitted now runs after them);
    // the drain then ends them as it ends the others, none is dropped unanswered. The drain
    // closes the idle connections and lets echoes being written finish.
    accepting.close();
    for (unsigned core = 0; core < aem::this_core::count(); ++core) (void)aem::submit(core, [] {});
    auto report = gate.drain(std::chrono::milliseconds(options.drain_ms));
    if (report) {
      std::printf("echo_server: drained: %zu connections ended, %zu cancelled at the deadline\n", report->finished,
                  report->cancelled);
    }
    server->join();
    return 0;
  });  // returning unwinds whatever is left
  std::printf("echo_server: served %llu connections, %llu bytes\n",
              static_cast<unsigned long long>(stats.connections.load()),
              static_cast<unsigned long long>(stats.bytes.load()));
  return status;
}
