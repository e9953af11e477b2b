// load_client.cpp — the load generator of bench/load/: one thread, plain edge-triggered epoll,
// N connections each running closed-loop ping-pong (send a message, wait for its echo, record
// the round trip, send the next). It is deliberately not built on aem, so the client's cost is
// the same, known quantity whichever server it measures, and a bug in aem cannot flatter aem.
//
// Output, one JSON object per line on stdout:
//   {"event":"warmup_done",...}   when the measured window opens: --warmup after the last
//                                 connection had its first echo (see PingPong::complete)
//   {"event":"result",...}        messages, seconds, msgs_per_s, p50/p99/p999/max_us,
//                                 client_cpu_s and, with --server-pid, server_cpu_s
//   {"event":"ready",...}         --idle: all connections are open and stay idle
// Errors (refused connect, no echo within --stall-timeout, wrong bytes) go to stderr with a
// non-zero exit status; no wait is without a deadline.
#include <sys/epoll.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "common.hpp"
#include "client.hpp"

namespace {

using aem_load::fail;
using aem_load::LatencyHistogram;
using aem_load::process_cpu_seconds;
using Clock = std::chrono::steady_clock;

constexpr const char* kUsage =
    "usage: aem_load_client [--connections N] [--duration S] [--warmup S] [--port P]\n"
    "                       [--message-size B] [--server-pid PID] [--connect-timeout S]\n"
    "                       [--stall-timeout S] [--idle [--hold S]]\n"
    "Closed-loop ping-pong against 127.0.0.1:P over N connections; prints JSON lines.\n"
    "--server-pid samples that process's CPU time (/proc/PID/stat) at the window's edges.\n"
    "--idle opens N connections, prints a ready line and holds them, sending nothing, until\n"
    "SIGINT/SIGTERM, stdin closes, or --hold seconds pass (an error).";

constexpr double kDefaultHoldS = 600;
constexpr int kMaxEvents = 512;
// How often the loop wakes with nothing to do, to check the clock and stalled connections.
constexpr int kTickMs = 100;
constexpr auto kStallScanInterval = std::chrono::seconds(1);

// Options: the ping-pong's, and --idle's.
struct Options : aem_load::PingPongOptions {
  bool idle;
  double hold_s;
};

Options parse(int argc, char** argv) {
  aem_load::Args args(argc, argv, kUsage);
  Options o{};
  static_cast<aem_load::PingPongOptions&>(o) = aem_load::parse_ping_pong(args);
  o.idle = args.flag("--idle");
  o.hold_s = args.seconds("--hold", kDefaultHoldS);
  args.done();
  return o;
}

// open_connections: the connections, non-blocking (the epoll loop drives them).
std::vector<int> open_connections(const char* program, const Options& o) {
  std::vector<int> fds = aem_load::connect_all(program, o.port, o.connections, o.connect_timeout_s);
  for (const int fd : fds) {
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) fail(program, "fcntl(O_NONBLOCK)");
  }
  return fds;
}

// PingPong drives every connection's closed loop and owns the measurement.
class PingPong {
 public:
  PingPong(const char* program, const Options& options, std::vector<int> fds)
      : program_(program), options_(options), payload_(options.message_bytes), receive_(options.message_bytes * 2) {
    aem_load::fill_pattern(payload_);
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) fail(program, "epoll_create1");
    connections_.resize(fds.size());
    for (std::size_t i = 0; i < fds.size(); ++i) {
      connections_[i].fd = fds[i];
      epoll_event event{};
      // Registered once, both directions, edge-triggered: no epoll_ctl on the hot path.
      event.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
      event.data.u64 = i;
      if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fds[i], &event) != 0) fail(program, "epoll_ctl(ADD)");
    }
  }

  void run() {
    const auto start = Clock::now();
    auto window_end = Clock::time_point::max();
    for (Connection& c : connections_) begin_request(c, start);
    bool measuring = false;
    auto next_stall_scan = start + kStallScanInterval;
    epoll_event events[kMaxEvents];
    for (;;) {
      const int ready = epoll_wait(epoll_fd_, events, kMaxEvents, kTickMs);
      if (ready < 0 && errno != EINTR) fail(program_, "epoll_wait");
      const auto now = Clock::now();
      for (int i = 0; i < ready; ++i) serve(connections_[events[i].data.u64], events[i].events, now);
      if (!measuring && answered_ == connections_.size() && now >= loop_started_ + seconds(options_.warmup_s)) {
        open_window(now);
        window_end = now + seconds(options_.duration_s);
        measuring = true;
      }
      if (measuring && now >= window_end) return close_window(now);
      if (now >= next_stall_scan) {
        check_stalls(now);
        next_stall_scan = now + kStallScanInterval;
      }
    }
  }

 private:
  struct Connection {
    int fd = -1;
    uint32_t sent = 0;      // bytes of the current request written
    uint32_t received = 0;  // bytes of its echo read back
    bool answered = false;  // has had at least one echo
    Clock::time_point sent_at;
  };

  static Clock::duration seconds(double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  }
  std::size_t index_of(const Connection& c) const { return static_cast<std::size_t>(&c - connections_.data()); }

  void begin_request(Connection& c, Clock::time_point now) {
    c.sent = 0;
    c.received = 0;
    c.sent_at = now;
    send_rest(c);
  }

  void send_rest(Connection& c) {
    while (c.sent < payload_.size()) {
      const ssize_t put = write(c.fd, payload_.data() + c.sent, payload_.size() - c.sent);
      if (put > 0) {
        c.sent += static_cast<uint32_t>(put);
        continue;
      }
      if (put < 0 && errno == EINTR) continue;
      if (put < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;  // EPOLLOUT resumes
      die(c, "write failed", errno);
    }
  }

  // The echo is read with a buffer larger than what is outstanding, so a short read proves
  // the socket drained (epoll(7)) and a server sending extra bytes is caught.
  void serve(Connection& c, uint32_t events, Clock::time_point now) {
    if (c.sent < payload_.size()) send_rest(c);
    for (;;) {
      const ssize_t got = read(c.fd, receive_.data(), receive_.size());
      if (got > 0) {
        const auto n = static_cast<std::size_t>(got);
        if (c.received + n > c.sent || std::memcmp(receive_.data(), payload_.data() + c.received, n) != 0) {
          die(c, "the echo differs from what was sent", 0);
        }
        c.received += static_cast<uint32_t>(n);
        if (c.received == payload_.size()) complete(c, now);
        if (n < receive_.size()) break;
        continue;
      }
      if (got == 0) die(c, "closed by the server", 0);
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      die(c, "read failed", errno);
    }
    if ((events & (EPOLLHUP | EPOLLERR)) != 0) die(c, "hung up by the server", 0);
  }

  // complete starts the connection's next request, except during the opening round: a connection
  // that had its first echo waits until every connection had one, and then all start together.
  // A server that accepts slowly (a thread-per-connection acceptor competing with thousands of
  // busy connection threads) would otherwise starve its own accept loop and have its connection
  // set-up counted as request latency. The warm-up runs from that moment.
  void complete(Connection& c, Clock::time_point now) {
    histogram_.record(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(now - c.sent_at).count()));
    if (c.answered) return begin_request(c, now);
    c.answered = true;
    c.sent_at = Clock::time_point::max();  // idle until the round ends: not a stall
    if (++answered_ < connections_.size()) return;
    loop_started_ = now;
    for (Connection& each : connections_) begin_request(each, now);
  }

  void open_window(Clock::time_point now) {
    histogram_.clear();
    window_opened_ = now;
    client_cpu_at_open_ = aem_load::own_cpu_seconds();
    if (options_.server_pid > 0) server_cpu_at_open_ = server_cpu();
    std::printf("{\"event\":\"warmup_done\",\"connections\":%zu}\n", connections_.size());
    std::fflush(stdout);
  }

  void close_window(Clock::time_point now) {
    const double server_cpu_s = options_.server_pid > 0 ? server_cpu() - server_cpu_at_open_ : -1;
    const double client_cpu_s = aem_load::own_cpu_seconds() - client_cpu_at_open_;
    const double wall_s = std::chrono::duration<double>(now - window_opened_).count();
    aem_load::print_result({connections_.size(), payload_.size(), wall_s, client_cpu_s, server_cpu_s}, histogram_);
  }

  double server_cpu() const {
    const double cpu = process_cpu_seconds(options_.server_pid);
    if (cpu < 0) {
      std::fprintf(stderr, "%s: cannot read /proc/%ld/stat: the server is gone\n", program_, options_.server_pid);
      std::exit(EXIT_FAILURE);
    }
    return cpu;
  }

  // A connection whose echo is overdue means a server that lost or starves it; waiting on
  // would hang the benchmark, so name it and stop.
  void check_stalls(Clock::time_point now) {
    const auto limit = seconds(options_.stall_timeout_s);
    std::size_t stalled = 0;
    const Connection* first = nullptr;
    for (const Connection& c : connections_) {
      if (c.sent_at == Clock::time_point::max() || now - c.sent_at <= limit) continue;
      if (first == nullptr) first = &c;
      ++stalled;
    }
    if (first == nullptr) return;
    std::fprintf(stderr,
                 "%s: %zu of %zu connections got no echo within %.1f s (first: connection %zu, %u of %zu bytes sent, "
                 "%u received)\n",
                 program_, stalled, connections_.size(), options_.stall_timeout_s, index_of(*first) + 1, first->sent,
                 payload_.size(), first->received);
    std::exit(EXIT_FAILURE);
  }

  [[noreturn]] void die(const Connection& c, const char* what, int error) const {
    std::fprintf(stderr, "%s: connection %zu of %zu: %s%s%s\n", program_, index_of(c) + 1, connections_.size(), what,
                 error != 0 ? ": " : "", error != 0 ? std::strerror(error) : "");
    std::exit(EXIT_FAILURE);
  }

  const char* program_;
  const Options& options_;
  std::vector<char> payload_;
  std::vector<char> receive_;
  std::vector<Connection> connections_;
  int epoll_fd_ = -1;
  std::size_t answered_ = 0;  // connections that have had an echo
  Clock::time_point loop_started_;  // when the opening round ended and every closed loop began
  LatencyHistogram histogram_;
  Clock::time_point window_opened_;
  double client_cpu_at_open_ = 0;
  double server_cpu_at_open_ = 0;
};

// hold_idle keeps the connections open and silent so the script can read the server's memory
// per connection; stdin closing is how the script says it is done (and how its death shows).
int hold_idle(const char* program, const Options& o, const std::vector<int>& fds, double connect_s) {
  const aem_load::StopSignals stop(program);
  std::printf("{\"event\":\"ready\",\"connections\":%zu,\"connect_seconds\":%.3f}\n", fds.size(), connect_s);
  std::fflush(stdout);
  constexpr double kMsPerS = 1e3;
  if (!stop.wait(static_cast<int>(o.hold_s * kMsPerS), STDIN_FILENO)) {
    std::fprintf(stderr, "%s: --idle: nobody released the connections within %.0f s\n", program, o.hold_s);
    return EXIT_FAILURE;
  }
  std::printf("{\"event\":\"released\"}\n");
  return EXIT_SUCCESS;
}

}  // namespace

int main(int argc, char** argv) {
  const char* program = argv[0];
  const Options options = parse(argc, argv);
  const auto started = Clock::now();
  std::vector<int> fds = open_connections(program, options);
  if (options.idle) {
    return hold_idle(program, options, fds, std::chrono::duration<double>(Clock::now() - started).count());
  }
  PingPong ping_pong(program, options, std::move(fds));
  ping_pong.run();
  return EXIT_SUCCESS;
}
