// thread_load_client.cpp — the second load generator of bench/load/, built unlike the first on
// purpose: a thread per connection, blocking write() then blocking read() of the echo, the
// kernel's scheduler deciding which connection goes next. aem_load_client drives every
// connection from one edge-triggered epoll loop, which answers a whole batch of echoes with a
// burst of sends in one go; a server then finds many requests waiting at each wake-up and pays
// for the wake-up once per batch. Here each send is its own thread's reaction to its own echo,
// so requests reach the server as the client's threads get to run, the way independent clients
// send them. A server that looks good under one client and not the other owes its figure to the
// client's rhythm. The output is aem_load_client's: the same JSON lines, the same histogram, the
// same window rules (client.hpp), so scripts/load_bench.py reads both alike.
//
// Each thread has a 64 KiB stack (pthread_create: std::thread cannot choose one), so 10,000
// connections reserve 640 MiB of address space, of which each idle thread touches a few pages.
#include <pthread.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "client.hpp"

namespace {

using aem_load::fail;
using Clock = std::chrono::steady_clock;

constexpr const char* kUsage =
    "usage: aem_thread_load_client [--connections N] [--duration S] [--warmup S] [--port P]\n"
    "                              [--message-size B] [--server-pid PID] [--connect-timeout S]\n"
    "                              [--stall-timeout S]\n"
    "Closed-loop ping-pong against 127.0.0.1:P over N connections, a blocking thread each;\n"
    "prints the JSON lines of aem_load_client. --server-pid samples that process's CPU time\n"
    "(/proc/PID/stat) at the window's edges.";

// The echo buffer and the histogram live on the heap: the stack holds only the loop.
constexpr std::size_t kStackBytes = 64 * 1024;
constexpr long kMaxConnections = 100'000;

using Options = aem_load::PingPongOptions;

Options parse(int argc, char** argv) {
  aem_load::Args args(argc, argv, kUsage);
  const Options o = aem_load::parse_ping_pong(args, kMaxConnections);
  args.done();
  return o;
}

int64_t now_ns() { return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count(); }

// Run is what the connection threads share with the main thread.
struct Run {
  const char* program;
  const Options* options;
  std::vector<char> payload;
  // The opening round: every connection has one echo before any closed loop starts (as in
  // aem_load_client), so connection set-up is never counted as request latency.
  std::mutex mutex;
  std::condition_variable round_done;
  long answered = 0;
  bool started = false;
  // The measured window, in steady-clock nanoseconds: a message counts when its echo arrives in
  // [window_open, window_close). The threads only read these.
  std::atomic<int64_t> window_open{std::numeric_limits<int64_t>::max()};
  std::atomic<int64_t> window_close{std::numeric_limits<int64_t>::max()};
  std::atomic<bool> stop{false};
};

struct Connection {
  Run* run;
  int fd;
  long index;
  aem_load::LatencyHistogram histogram;
};

[[noreturn]] void die(const Connection& c, const char* what, int error) {
  std::fprintf(stderr, "%s: connection %ld of %ld: %s%s%s\n", c.run->program, c.index + 1, c.run->options->connections,
               what, error != 0 ? ": " : "", error != 0 ? std::strerror(error) : "");
  std::fflush(stderr);
  _exit(EXIT_FAILURE);  // the other threads are blocked in the server's sockets: no orderly exit
}

// round_trip writes one message and reads its echo, checking every byte.
void round_trip(Connection& c, char* echo) {
  const std::vector<char>& payload = c.run->payload;
  for (std::size_t sent = 0; sent < payload.size();) {
    const ssize_t put = write(c.fd, payload.data() + sent, payload.size() - sent);
    if (put > 0) {
      sent += static_cast<std::size_t>(put);
    } else if (put < 0 && errno != EINTR) {
      die(c, errno == EAGAIN ? "write blocked past --stall-timeout" : "write failed", errno == EAGAIN ? 0 : errno);
    }
  }
  for (std::size_t got = 0; got < payload.size();) {
    const ssize_t n = read(c.fd, echo + got, payload.size() - got);
    if (n > 0) {
      got += static_cast<std::size_t>(n);
    } else if (n == 0) {
      die(c, "closed by the server", 0);
    } else if (errno != EINTR) {
      die(c, errno == EAGAIN ? "no echo within --stall-timeout" : "read failed", errno == EAGAIN ? 0 : errno);
    }
  }
  if (std::memcmp(echo, payload.data(), payload.size()) != 0) die(c, "the echo differs from what was sent", 0);
}

void* serve(void* argument) {
  Connection& c = *static_cast<Connection*>(argument);
  Run& run = *c.run;
  std::unique_ptr<char[]> echo(new char[run.payload.size()]);
  round_trip(c, echo.get());
  {
    std::unique_lock lock(run.mutex);
    if (++run.answered == run.options->connections) run.round_done.notify_all();
    run.round_done.wait(lock, [&] { return run.started; });
  }
  while (!run.stop.load(std::memory_order_relaxed)) {
    const int64_t sent_at = now_ns();
    round_trip(c, echo.get());
    const int64_t done_at = now_ns();
    if (done_at >= run.window_open.load(std::memory_order_relaxed) &&
        done_at < run.window_close.load(std::memory_order_relaxed)) {
      c.histogram.record(static_cast<uint64_t>(done_at - sent_at));
    }
  }
  return nullptr;
}

double server_cpu(const Run& run) {
  if (run.options->server_pid <= 0) return -1;
  const double cpu = aem_load::process_cpu_seconds(run.options->server_pid);
  if (cpu < 0) {
    std::fprintf(stderr, "%s: cannot read /proc/%ld/stat: the server is gone\n", run.program, run.options->server_pid);
    std::exit(EXIT_FAILURE);
  }
  return cpu;
}

void sleep_for(double seconds) { std::this_thread::sleep_for(std::chrono::duration<double>(seconds)); }

}  // namespace

int main(int argc, char** argv) {
  const char* program = argv[0];
  const Options options = parse(argc, argv);
  Run run;
  run.program = program;
  run.options = &options;
  run.payload.resize(options.message_bytes);
  aem_load::fill_pattern(run.payload);

  const std::vector<int> fds = aem_load::connect_all(program, options.port, options.connections, options.connect_timeout_s);
  // Blocking I/O bounded by the stall timeout: a lost echo ends the run with a message.
  const timeval stall = aem_load::to_timeval(options.stall_timeout_s);
  std::vector<std::unique_ptr<Connection>> connections;
  connections.reserve(fds.size());
  for (std::size_t i = 0; i < fds.size(); ++i) {
    setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &stall, sizeof stall);
    setsockopt(fds[i], SOL_SOCKET, SO_SNDTIMEO, &stall, sizeof stall);
    connections.push_back(std::make_unique<Connection>(Connection{&run, fds[i], static_cast<long>(i), {}}));
  }

  pthread_attr_t attributes;
  pthread_attr_init(&attributes);
  pthread_attr_setstacksize(&attributes, kStackBytes);
  std::vector<pthread_t> threads(connections.size());
  for (std::size_t i = 0; i < connections.size(); ++i) {
    if (const int error = pthread_create(&threads[i], &attributes, serve, connections[i].get()); error != 0) {
      errno = error;
      fail(program, "pthread_create");
    }
  }
  pthread_attr_destroy(&attributes);

  {
    std::unique_lock lock(run.mutex);
    const bool all = run.round_done.wait_for(lock, std::chrono::duration<double>(options.stall_timeout_s),
                                             [&] { return run.answered == options.connections; });
    if (!all) {
      std::fprintf(stderr, "%s: only %ld of %ld connections had their first echo within %.1f s\n", program,
                   run.answered, options.connections, options.stall_timeout_s);
      return EXIT_FAILURE;
    }
    run.started = true;
  }
  run.round_done.notify_all();

  sleep_for(options.warmup_s);
  const double client_cpu_at_open = aem_load::own_cpu_seconds();
  const double server_cpu_at_open = server_cpu(run);
  const int64_t opened = now_ns();
  run.window_open.store(opened, std::memory_order_relaxed);
  std::printf("{\"event\":\"warmup_done\",\"connections\":%zu}\n", connections.size());
  std::fflush(stdout);

  sleep_for(options.duration_s);
  const int64_t closed = now_ns();
  run.window_close.store(closed, std::memory_order_relaxed);
  const double server_cpu_s = options.server_pid > 0 ? server_cpu(run) - server_cpu_at_open : -1;
  const double client_cpu_s = aem_load::own_cpu_seconds() - client_cpu_at_open;
  run.stop.store(true, std::memory_order_relaxed);
  for (const pthread_t thread : threads) pthread_join(thread, nullptr);

  aem_load::LatencyHistogram histogram;
  for (const auto& c : connections) histogram.add(c->histogram);
  for (const int fd : fds) close(fd);
  aem_load::print_result({connections.size(), options.message_bytes, static_cast<double>(closed - opened) / 1e9,
                          client_cpu_s, server_cpu_s},
                         histogram);
  return EXIT_SUCCESS;
}
