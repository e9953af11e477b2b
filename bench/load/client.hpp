// client.hpp — what both load clients of bench/load/ share: opening the connections, the latency
// histogram, a server's CPU time from /proc, and the JSON result line the scripts read. Shared so
// that the two clients, built differently on purpose, connect and report the same way.
#pragma once

#include "common.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>
#include <unistd.h>

namespace aem_load {

inline constexpr double kNsPerUs = 1e3;

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
  // add folds `other`'s samples into this one (a client with a histogram per thread merges them).
  void add(const LatencyHistogram& other) {
    for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
    total_ += other.total_;
    max_ = std::max(max_, other.max_);
  }
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
inline double process_cpu_seconds(long pid) {
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

// PingPongOptions are the flags both clients take for a closed-loop run.
struct PingPongOptions {
  long connections;
  double duration_s;
  double warmup_s;
  int port;
  std::size_t message_bytes;
  long server_pid;  // 0: none
  double connect_timeout_s;
  double stall_timeout_s;
};

// parse_ping_pong reads the PingPongOptions from `args` (the caller still calls args.done()).
inline PingPongOptions parse_ping_pong(Args& args, long max_connections = 1'000'000) {
  constexpr long kDefaultConnections = 100;
  constexpr double kDefaultDurationS = 10;
  constexpr double kDefaultWarmupS = 2;
  constexpr long kDefaultMessageBytes = 64;
  constexpr long kMaxMessageBytes = 1 << 20;
  constexpr double kDefaultConnectTimeoutS = 5;
  // Generous: it exists to catch a lost connection, and a thread-per-connection server at 10,000
  // connections on a busy machine legitimately takes seconds per round.
  constexpr double kDefaultStallTimeoutS = 30;
  PingPongOptions o{};
  o.connections = args.integer("--connections", kDefaultConnections, 1, max_connections);
  o.duration_s = args.seconds("--duration", kDefaultDurationS);
  o.warmup_s = args.seconds("--warmup", kDefaultWarmupS);
  o.port = args.port();
  o.message_bytes = static_cast<std::size_t>(args.integer("--message-size", kDefaultMessageBytes, 1, kMaxMessageBytes));
  o.server_pid = args.integer("--server-pid", 0, 1, std::numeric_limits<int>::max());
  o.connect_timeout_s = args.seconds("--connect-timeout", kDefaultConnectTimeoutS);
  o.stall_timeout_s = args.seconds("--stall-timeout", kDefaultStallTimeoutS);
  return o;
}

// Descriptors a client needs beyond its connections: stdio, epoll, signalfd, /proc reads.
inline constexpr rlim_t kSpareFds = 16;

inline timeval to_timeval(double seconds) {
  timeval t{};
  t.tv_sec = static_cast<time_t>(seconds);
  t.tv_usec = static_cast<suseconds_t>((seconds - static_cast<double>(t.tv_sec)) * 1e6);
  return t;
}

// connect_all opens `connections` blocking sockets to 127.0.0.1:port one after another, each
// connect bounded by SO_SNDTIMEO (which connect() honours), with TCP_NODELAY: sequential
// connects on loopback take microseconds each and never overrun the server's accept queue.
// Exits with a message naming the connection that failed.
inline std::vector<int> connect_all(const char* program, int port, long connections, double connect_timeout_s) {
  const rlim_t limit = raise_fd_limit(program);
  if (static_cast<rlim_t>(connections) + kSpareFds > limit) {
    std::fprintf(stderr, "%s: %ld connections need %ld descriptors, RLIMIT_NOFILE allows %llu\n", program, connections,
                 connections + static_cast<long>(kSpareFds), static_cast<unsigned long long>(limit));
    std::exit(EXIT_FAILURE);
  }
  const sockaddr_in address = loopback_address(port);
  const timeval timeout = to_timeval(connect_timeout_s);
  std::vector<int> fds;
  fds.reserve(static_cast<std::size_t>(connections));
  for (long i = 0; i < connections; ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fail(program, "socket");
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    if (connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
      const int error = errno == EINPROGRESS ? ETIMEDOUT : errno;  // EINPROGRESS: SO_SNDTIMEO ran out
      std::fprintf(stderr, "%s: connection %ld of %ld to 127.0.0.1:%d failed: %s\n", program, i + 1, connections, port,
                   std::strerror(error));
      std::exit(EXIT_FAILURE);
    }
    set_nodelay(fd);
    fds.push_back(fd);
  }
  return fds;
}

// fill_pattern writes the recognisable, position-dependent payload both clients send: a server
// that reorders or mixes up bytes fails the comparison instead of passing as fast.
inline void fill_pattern(std::vector<char>& payload) {
  for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>('a' + i % 26);
}

// Result is one measured window: what print_result writes as the {"event":"result"} line.
struct Result {
  std::size_t connections;
  std::size_t message_size;
  double seconds;
  double client_cpu_s;
  double server_cpu_s;  // -1 without --server-pid
};

inline void print_result(const Result& r, const LatencyHistogram& histogram) {
  const uint64_t messages = histogram.total();
  std::printf(
      "{\"event\":\"result\",\"connections\":%zu,\"message_size\":%zu,\"messages\":%" PRIu64
      ",\"seconds\":%.6f,\"msgs_per_s\":%.1f,\"p50_us\":%.2f,\"p99_us\":%.2f,\"p999_us\":%.2f,\"max_us\":%.2f,"
      "\"client_cpu_s\":%.6f,\"server_cpu_s\":%.6f}\n",
      r.connections, r.message_size, messages, r.seconds, static_cast<double>(messages) / r.seconds,
      histogram.percentile(0.5) / kNsPerUs, histogram.percentile(0.99) / kNsPerUs,
      histogram.percentile(0.999) / kNsPerUs, static_cast<double>(histogram.max()) / kNsPerUs, r.client_cpu_s,
      r.server_cpu_s);
  std::fflush(stdout);
}

}  // namespace aem_load
