// echo_server — a TCP echo server on the loopback interface, in two styles:
//   capsule       every connection gets its own capsule that reads and writes as if it had a
//                 thread of its own (blocking style);
//   registration  AEM-style: an on_accept registration, and per connection an on_data
//                 registration whose handler echoes the bytes; an idle connection holds no
//                 capsule and no buffer, only its registration.
// SIGINT / SIGTERM stop it cleanly: accepting ends, open connections are unwound.
//
//   echo_server --port 7000 --cores 2 --style registration
//   (in another terminal)  nc 127.0.0.1 7000
//
// A serving style is one entry in kStyles; each gets the parsed options and a running
// runtime's root capsule.
#include <aem/capsule.hpp>
#include <aem/fd_io.hpp>
#include <aem/cross_core.hpp>
#include <aem/net.hpp>
#include <aem/net/events.hpp>
#include <aem/runtime.hpp>

#include <aem/wait_group.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>
#include <sys/signalfd.h>
#include <unistd.h>

namespace {

struct Options {
  std::uint16_t port = 7000;
  unsigned cores = 0;  // 0: one per CPU
  std::string_view style = "capsule";
  long idle_spin_us = -1;  // -1: Config's default
  long coalesce_us = 0;    // Config::coalesce_window; 0: off
};

// Stats are printed when the server stops.
struct Stats {
  std::atomic<std::uint64_t> connections{0};
  std::atomic<std::uint64_t> bytes{0};
};

// ---- style "capsule": one capsule per connection ------------------------------------------

// echo copies what the client sends back to it until the client closes its side.
void echo(aem::TcpStream stream, Stats& stats) {
  std::array<std::byte, 16 * 1024> buffer;
  while (auto n = stream.read(buffer)) {
    if (*n == 0) return;  // the client is done
    if (!stream.write_all(std::span(buffer).first(*n))) return;
    stats.bytes.fetch_add(*n, std::memory_order_relaxed);
  }
}

// serve_capsules accepts until the listener is closed, spreading connections over the cores.
void serve_capsules(aem::TcpListener& listener, Stats& stats, aem::WaitGroup& /*stop: closing ends accept*/) {
  const unsigned cores = aem::this_core::count();
  for (unsigned next = 0;; next = (next + 1) % cores) {
    auto stream = listener.accept();
    if (!stream) {  // out of descriptors is not an error: accept pauses and retries by itself
      if (stream.error() != aem::errc::cancelled) std::fprintf(stderr, "accept: %s\n", stream.error().message().c_str());
      return;
    }
    (void)stream->set_nodelay(true);
    stats.connections.fetch_add(1, std::memory_order_relaxed);
    auto connection = aem::spawn([s = std::move(*stream), &stats]() mutable { echo(std::move(s), stats); },
                                 {.core = next});
    if (connection) connection->detach();
    else std::fprintf(stderr, "spawn: %s (connection dropped)\n", connection.error().message().c_str());
  }
}

// ---- style "registration": AEM-style event registrations -----------------------------------

// watch registers the echo of one connection on the calling core. The handler owns the stream:
// when the stream ends, the registration ends and destroying the handler closes it.
void watch(aem::TcpStream accepted, Stats& stats) {
  auto stream = std::make_shared<aem::TcpStream>(std::move(accepted));
  auto id = aem::on_data(
      *stream,
      [stream, &stats](aem::EventData bytes) {
        // send() queues the bytes on the stream and returns: the handler never suspends, so it
        // can run inline on the core's dispatcher — no capsule, no stack, no switch per
        // message. A failed send surfaces here on the next call; the registration itself ends
        // when the peer goes.
        const std::size_t size = bytes.size();
        if (stream->send(std::move(bytes))) stats.bytes.fetch_add(size, std::memory_order_relaxed);
      },
      {.exec = aem::Executor::inline_handler});  // one at a time, in order: echoes stay in order
  if (!id) std::fprintf(stderr, "on_data: %s (connection dropped)\n", id.error().message().c_str());
}

// serve_registrations accepts through one registration and hands connections round-robin to
// the cores, each of which registers the connection's data handler; then it waits for `stop`.
void serve_registrations(aem::TcpListener& listener, Stats& stats, aem::WaitGroup& stop) {
  const unsigned cores = aem::this_core::count();
  unsigned next = 0;
  auto accepting = aem::on_accept(
      listener,
      [&](aem::TcpStream stream) {
        (void)stream.set_nodelay(true);
        stats.connections.fetch_add(1, std::memory_order_relaxed);
        const unsigned core = next;
        next = (next + 1) % cores;
        if (core == aem::this_core::id()) return watch(std::move(stream), stats);
        auto handed = aem::post(core, [s = std::move(stream), &stats]() mutable { watch(std::move(s), stats); });
        if (!handed) std::fprintf(stderr, "post: %s (connection dropped)\n", handed.error().message().c_str());
      },
      // Inline: the handler never suspends (an option, a post, a registration), and a burst of
      // connections then costs no capsule each — fresh capsules would grow the pool by one per
      // connection accepted in the same turn.
      {.exec = aem::Executor::inline_handler,
       .on_error = [](std::error_code error) { std::fprintf(stderr, "accept paused: %s\n", error.message().c_str()); }});
  if (!accepting) {
    std::fprintf(stderr, "on_accept: %s\n", accepting.error().message().c_str());
    return;
  }
  stop.wait();
  (void)aem::cancel(*accepting);
}

// ---- the styles and the common frame -------------------------------------------------------

struct Style {
  std::string_view name;
  std::string_view description;
  // serve returns once `stop` reaches zero and the listener is closed.
  void (*serve)(aem::TcpListener& listener, Stats& stats, aem::WaitGroup& stop);
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
               "                   [--help]\n"
               "  --port N      TCP port on 127.0.0.1 (default 7000; 0 picks a free one)\n"
               "  --cores N     scheduler cores (default: one per CPU)\n"
               "  --idle-spin-us N\n"
               "                the longest an idle core polls before it sleeps (Config::idle_spin,\n"
               "                default 20; it adapts below that; 0 sleeps at once)\n"
               "  --coalesce-us N\n"
               "                after a busy stretch, let completions accumulate up to N us before\n"
               "                the core wakes for them (Config::coalesce_window, default 0: off):\n"
               "                less CPU per message under load, up to N us more latency\n"
               "  --style NAME  how connections are served:\n");
  for (const Style& style : kStyles) {
    std::fprintf(out, "                  %-12.*s %.*s\n", static_cast<int>(style.name.size()), style.name.data(),
                 static_cast<int>(style.description.size()), style.description.data());
  }
  std::fprintf(out, "Stops cleanly on SIGINT or SIGTERM.\n");
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
        arg != "--coalesce-us") {
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
    else if (arg == "--style") {
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

// wait_for_signal suspends the calling capsule until SIGINT or SIGTERM arrives on `fd`.
void wait_for_signal(int fd) {
  signalfd_siginfo info{};
  auto n = aem::read(fd, std::as_writable_bytes(std::span(&info, 1)));
  if (n && *n == sizeof info) std::printf("\n%s: stopping\n", ::strsignal(static_cast<int>(info.ssi_signo)));
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (const int status = parse_options(argc, argv, options); status >= 0) return status;
  const Style& style = *find_style(options.style);

  // Block the signals before any core thread exists (threads inherit the mask), and take them
  // from a signalfd that a capsule reads like any other descriptor.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  if (::pthread_sigmask(SIG_BLOCK, &signals, nullptr) != 0) return 1;
  const int signal_fd = ::signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC);
  if (signal_fd < 0) {
    std::perror("signalfd");
    return 1;
  }

  auto listener = aem::TcpListener::bind(aem::SocketAddress::ipv4_loopback(options.port));
  if (!listener) {
    std::fprintf(stderr, "echo_server: cannot listen on 127.0.0.1:%u: %s\n", options.port,
                 listener.error().message().c_str());
    return 1;
  }
  Stats stats;
  aem::Config config;
  config.cores = options.cores;
  if (options.idle_spin_us >= 0) config.idle_spin = std::chrono::microseconds(options.idle_spin_us);
  config.coalesce_window = std::chrono::microseconds(options.coalesce_us);
  aem::Runtime rt(config);
  std::printf("echo_server: listening on %s, style %.*s, %u cores\n", listener->local_address()->to_string().c_str(),
              static_cast<int>(style.name.size()), style.name.data(), rt.cores());
  std::fflush(stdout);
  rt.run([&] {
    aem::WaitGroup stop;
    stop.add(1);
    auto server = aem::spawn([&] { style.serve(*listener, stats, stop); });
    if (!server) {
      std::fprintf(stderr, "spawn: %s\n", server.error().message().c_str());
      return;
    }
    wait_for_signal(signal_fd);
    stop.done();
    (void)listener->close();  // a blocked accept ends with errc::cancelled
    server->join();
  });  // returning unwinds the connections still open
  ::close(signal_fd);
  std::printf("echo_server: served %llu connections, %llu bytes\n",
              static_cast<unsigned long long>(stats.connections.load()),
              static_cast<unsigned long long>(stats.bytes.load()));
  return 0;
}
