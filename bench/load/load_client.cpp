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

#include <array>
#include <bit>
#include <cinttypes>
#include <cstdint>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "common.hpp"

namespace {

using aem_load::fail;
using Clock = std::chrono::steady_clock;

constexpr const char* kUsage =
    "usage: aem_load_client [--connections N] [--duration S] [--warmup S] [--port P]\n"
    "                       [--message-size B] [--server-pid PID] [--connect-timeout S]\n"
    "                       [--stall-timeout S] [--idle [--hold S]]\n"
    "Closed-loop ping-pong against 127.0.0.1:P over N connections; prints JSON lines.\n"
    "--server-pid samples that process's CPU time (/proc/PID/stat) at the window's edges.\n"
    "--idle opens N connections, prints a ready line and holds them, sending nothing, until\n"
    "SIGINT/SIGTERM, stdin closes, or --hold seconds pass (an error).";

constexpr long kDefaultConnections = 100;
constexpr long kMaxConnections = 1'000'000;
constexpr double kDefaultDurationS = 10;
constexpr double kDefaultWarmupS = 2;
constexpr long kDefaultMessageBytes = 64;
constexpr long kMaxMessageBytes = 1 << 20;
constexpr double kDefaultConnectTimeoutS = 5;
// Generous: it exists to catch a lost connection, and a thread-per-connection server at 10,000
// connections on a busy machine legitimately takes seconds per round.
constexpr double kDefaultStallTimeoutS = 30;
constexpr double kDefaultHoldS = 600;
// Descriptors the client needs beyond its connections: stdio, epoll, signalfd, /proc reads.
constexpr rlim_t kSpareFds = 16;
constexpr int kMaxEvents = 512;
// How often the loop wakes with nothing to do, to check the clock and stalled connections.
constexpr int kTickMs = 100;
constexpr auto kStallScanInterval = std::chrono::seconds(1);
constexpr double kNsPerUs = 1e3;

// LatencyHistogram is log-linear, HdrHistogram style: values below 2^kSubBits ns are exact,
// larger ones keep kSubBits bits of mantissa (≤ 0.8 % error). Fixed size whatever the run's
// length, and recording is a few instructions, so the client spends its core on the sockets.
class LatencyHistogram {
 public:
  void record(uint64_t ns) {
    ++counts_[index(ns)];
    ++total_;
    max_ = std::max(max_, ns);
  }
  void clear() { *this = LatencyHistogram(); }
  uint64_t total() const { return total_; }
  uint64_t max() const { return max_; }

  // percentile: the smallest recorded value v (bucket midpoint) with at least q of the
  // samples ≤ v.
  double percentile(double q) const {
    if (total_ == 0) return 0;
    const auto rank = static_cast<uint64_t>(q * static_cast<double>(total_) + 0.5);
    uint64_t seen = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= std::max<uint64_t>(rank, 1)) return midpoint(i);
    }
    return static_cast<double>(max_);
  }

 private:
  static constexpr int kSubBits = 7;
  static constexpr uint64_t kSubBuckets = uint64_t{1} << kSubBits;
  static constexpr std::size_t kBuckets = (64 - kSubBits + 1) * kSubBuckets;

  static std::size_t index(uint64_t ns) {
    if (ns < kSubBuckets) return ns;
    const int shift = std::bit_width(ns) - 1 - kSubBits;
    return static_cast<std::size_t>((static_cast<uint64_t>(shift) + 1) * kSubBuckets + ((ns >> shift) - kSubBuckets));
  }
  static double midpoint(std::size_t i) {
    if (i < kSubBuckets) return static_cast<double>(i);
    const int shift = static_cast<int>(i / kSubBuckets) - 1;
    const uint64_t low = ((i % kSubBuckets) + kSubBuckets) << shift;
    return static_cast<double>(low) + static_cast<double>((uint64_t{1} << shift) - 1) / 2;
  }

  std::array<uint64_t, kBuckets> counts_{};
  uint64_t total_ = 0;
  uint64_t max_ = 0;
};

// process_cpu_seconds reads utime + stime of a whole process (every thread, living or dead)
// from /proc/PID/stat; negative when the process is gone.
double process_cpu_seconds(long pid) {
  std::ifstream file("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!std::getline(file, text)) return -1;
  // The command name may hold spaces and parentheses; the fields start after the last ')'.
  std::istringstream fields(text.substr(text.rfind(')') + 2));
  std::string field;
  constexpr int kUtimeIndex = 11;  // field 14 of proc(5), counted from field 3 (state)
  double utime = 0;
  double stime = 0;
  for (int i = 0; fields >> field; ++i) {
    if (i == kUtimeIndex) utime = std::stod(field);
    if (i == kUtimeIndex + 1) {
      stime = std::stod(field);
      break;
    }
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

struct Options {
  long connections;
  double duration_s;
  double warmup_s;
  int port;
  std::size_t message_bytes;
  long server_pid;
  double connect_timeout_s;
  double stall_timeout_s;
  bool idle;
  double hold_s;
};

Options parse(int argc, char** argv) {
  aem_load::Args args(argc, argv, kUsage);
  Options o{};
  o.connections = args.integer("--connections", kDefaultConnections, 1, kMaxConnections);
  o.duration_s = args.seconds("--duration", kDefaultDurationS);
  o.warmup_s = args.seconds("--warmup", kDefaultWarmupS);
  o.port = args.port();
  o.message_bytes = static_cast<std::size_t>(args.integer("--message-size", kDefaultMessageBytes, 1, kMaxMessageBytes));
  o.server_pid = args.integer("--server-pid", 0, 1, std::numeric_limits<int>::max());
  o.connect_timeout_s = args.seconds("--connect-timeout", kDefaultConnectTimeoutS);
  o.stall_timeout_s = args.seconds("--stall-timeout", kDefaultStallTimeoutS);
  o.idle = args.flag("--idle");
  o.hold_s = args.seconds("--hold", kDefaultHoldS);
  args.done();
  return o;
}

timeval to_timeval(double seconds) {
  timeval t{};
  t.tv_sec = static_cast<time_t>(seconds);
  t.tv_usec = static_cast<suseconds_t>((seconds - static_cast<double>(t.tv_sec)) * 1e6);
  return t;
}

// connect_all opens the connections one after another with blocking connects bounded by
// SO_SNDTIMEO (which connect() honours), then makes them non-blocking: sequential connects on
// loopback take microseconds each and never overrun the server's accept queue.
std::vector<int> connect_all(const char* program, const Options& o) {
  const rlim_t limit = aem_load::raise_fd_limit(program);
  if (static_cast<rlim_t>(o.connections) + kSpareFds > limit) {
    std::fprintf(stderr, "%s: %ld connections need %ld descriptors, RLIMIT_NOFILE allows %llu\n", program,
                 o.connections, o.connections + static_cast<long>(kSpareFds), static_cast<unsigned long long>(limit));
    std::exit(EXIT_FAILURE);
  }
  const sockaddr_in address = aem_load::loopback_address(o.port);
  const timeval timeout = to_timeval(o.connect_timeout_s);
  std::vector<int> fds;
  fds.reserve(static_cast<std::size_t>(o.connections));
  for (long i = 0; i < o.connections; ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fail(program, "socket");
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    if (connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
      const int error = errno == EINPROGRESS ? ETIMEDOUT : errno;  // EINPROGRESS: SO_SNDTIMEO ran out
      std::fprintf(stderr, "%s: connection %ld of %ld to 127.0.0.1:%d failed: %s\n", program, i + 1, o.connections,
                   o.port, std::strerror(error));
      std::exit(EXIT_FAILURE);
    }
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) fail(program, "fcntl(O_NONBLOCK)");
    aem_load::set_nodelay(fd);
    fds.push_back(fd);
  }
  return fds;
}

// PingPong drives every connection's closed loop and owns the measurement.
class PingPong {
 public:
  PingPong(const char* program, const Options& options, std::vector<int> fds)
      : program_(program), options_(options), payload_(options.message_bytes), receive_(options.message_bytes * 2) {
    // A recognisable, position-dependent pattern: a server that reorders or mixes up bytes
    // fails the comparison instead of passing as fast.
    for (std::size_t i = 0; i < payload_.size(); ++i) payload_[i] = static_cast<char>('a' + i % 26);
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
    const uint64_t messages = histogram_.total();
    std::printf(
        "{\"event\":\"result\",\"connections\":%zu,\"message_size\":%zu,\"messages\":%" PRIu64
        ",\"seconds\":%.6f,\"msgs_per_s\":%.1f,\"p50_us\":%.2f,\"p99_us\":%.2f,\"p999_us\":%.2f,\"max_us\":%.2f,"
        "\"client_cpu_s\":%.6f,\"server_cpu_s\":%.6f}\n",
        connections_.size(), payload_.size(), messages, wall_s, static_cast<double>(messages) / wall_s,
        histogram_.percentile(0.5) / kNsPerUs, histogram_.percentile(0.99) / kNsPerUs,
        histogram_.percentile(0.999) / kNsPerUs, static_cast<double>(histogram_.max()) / kNsPerUs, client_cpu_s,
        server_cpu_s);
    std::fflush(stdout);
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
  std::vector<int> fds = connect_all(program, options);
  if (options.idle) {
    return hold_idle(program, options, fds, std::chrono::duration<double>(Clock::now() - started).count());
  }
  PingPong ping_pong(program, options, std::move(fds));
  ping_pong.run();
  return EXIT_SUCCESS;
}
