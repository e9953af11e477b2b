// common.hpp — what the load client and the two baseline servers of bench/load/ share: flag
// parsing, the fd limit, stop signals, the loopback listener and the out-of-fds back-off. Kept
// in plain POSIX so the baselines stay what a conventional server looks like.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace aem_load {

// The port every program of bench/load/ uses when --port is not given.
inline constexpr int kDefaultPort = 7070;
inline constexpr int kMaxPort = 65535;

// fail reports a failed system call the way the script shows it to the user, then exits.
[[noreturn]] inline void fail(const char* program, const char* what) {
  std::fprintf(stderr, "%s: %s: %s\n", program, what, std::strerror(errno));
  std::exit(EXIT_FAILURE);
}

[[noreturn]] inline void usage_error(const char* program, const std::string& message) {
  std::fprintf(stderr, "%s: %s (try --help)\n", program, message.c_str());
  std::exit(EXIT_FAILURE);
}

// Args reads `--name value`, `--name=value` and `--name` switches. Each program asks for the
// flags it knows and then calls done(), so a misspelt flag is an error instead of a silent
// default that would make a benchmark measure the wrong thing.
//
// Example:
//   aem_load::Args args(argc, argv, "usage: prog [--port N]");
//   int port = args.port();
//   args.done();
class Args {
 public:
  Args(int argc, char** argv, const char* usage) : program_(argv[0]), tokens_(argv + 1, argv + argc) {
    used_.assign(tokens_.size(), false);
    if (flag("--help") || flag("-h")) {
      std::printf("%s\n", usage);
      std::exit(EXIT_SUCCESS);
    }
  }

  bool flag(std::string_view name) {
    for (std::size_t i = 0; i < tokens_.size(); ++i) {
      if (!used_[i] && tokens_[i] == name) return used_[i] = true;
    }
    return false;
  }

  long integer(std::string_view name, long fallback, long min, long max) {
    const std::string_view text = value(name);
    if (text.empty()) return fallback;
    long parsed = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), parsed);
    if (ec != std::errc() || end != text.data() + text.size() || parsed < min || parsed > max) {
      usage_error(program_, std::string(name) + " wants an integer in [" + std::to_string(min) + ", " +
                                std::to_string(max) + "], got '" + std::string(text) + "'");
    }
    return parsed;
  }

  double seconds(std::string_view name, double fallback) { return number(name, fallback, "number of seconds"); }

  // number reads a non-negative real; `what` names it in the error message.
  double number(std::string_view name, double fallback, const char* what = "number") {
    const std::string_view text = value(name);
    if (text.empty()) return fallback;
    char* end = nullptr;
    const std::string copy(text);
    const double parsed = std::strtod(copy.c_str(), &end);
    if (end != copy.c_str() + copy.size() || !(parsed >= 0)) {
      usage_error(program_, std::string(name) + " wants a non-negative " + what + ", got '" + copy + "'");
    }
    return parsed;
  }

  // text returns the flag's value as given, or `fallback`.
  std::string_view text(std::string_view name, std::string_view fallback) {
    const std::string_view given = value(name);
    return given.empty() ? fallback : given;
  }

  int port() { return static_cast<int>(integer("--port", kDefaultPort, 1, kMaxPort)); }

  void done() const {
    for (std::size_t i = 0; i < tokens_.size(); ++i) {
      if (!used_[i]) usage_error(program_, "unknown argument '" + std::string(tokens_[i]) + "'");
    }
  }

  const char* program() const { return program_; }

 private:
  std::string_view value(std::string_view name) {
    for (std::size_t i = 0; i < tokens_.size(); ++i) {
      if (used_[i]) continue;
      const std::string_view token = tokens_[i];
      if (token == name) {
        if (i + 1 == tokens_.size()) usage_error(program_, std::string(name) + " needs a value");
        used_[i] = used_[i + 1] = true;
        return tokens_[i + 1];
      }
      if (token.size() > name.size() && token.starts_with(name) && token[name.size()] == '=') {
        used_[i] = true;
        return token.substr(name.size() + 1);
      }
    }
    return {};
  }

  const char* program_;
  std::vector<std::string_view> tokens_;
  std::vector<bool> used_;
};

// raise_fd_limit lifts the soft RLIMIT_NOFILE to the hard one: 10,000 connections need 10,000
// descriptors on each side, far above the usual soft limit of 1,024.
inline rlim_t raise_fd_limit(const char* program) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) fail(program, "getrlimit(RLIMIT_NOFILE)");
  if (limit.rlim_cur != limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) fail(program, "setrlimit(RLIMIT_NOFILE)");
  }
  return limit.rlim_cur;
}

// StopSignals turns SIGINT and SIGTERM into a readable descriptor. Construct it before any
// thread starts: the mask is inherited, so no worker is interrupted mid-call and the main loop
// sees the stop as one more event instead of racing a flag against a blocking wait.
class StopSignals {
 public:
  explicit StopSignals(const char* program) {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    if (pthread_sigmask(SIG_BLOCK, &set_, nullptr) != 0) fail(program, "pthread_sigmask");
    fd_ = signalfd(-1, &set_, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd_ < 0) fail(program, "signalfd");
  }
  ~StopSignals() { close(fd_); }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  int fd() const { return fd_; }

  // wait blocks until a stop signal arrives or `extra_fd` (if >= 0) is readable or closed;
  // returns false when `timeout_ms` (-1: none) passed first.
  bool wait(int timeout_ms, int extra_fd = -1) const {
    pollfd fds[2] = {{fd_, POLLIN, 0}, {extra_fd, POLLIN, 0}};
    for (;;) {
      const int ready = poll(fds, extra_fd >= 0 ? 2 : 1, timeout_ms);
      if (ready > 0) return true;
      if (ready == 0) return false;
      if (errno != EINTR) return true;  // nothing left to wait on sensibly: treat as a stop
    }
  }

 private:
  sigset_t set_{};
  int fd_ = -1;
};

inline void set_nodelay(int fd) {
  // Ping-pong answers one small write with one small write; Nagle must never hold either back.
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

inline sockaddr_in loopback_address(int port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return address;
}

// listen_loopback opens the servers' listening socket on 127.0.0.1:port with the largest
// backlog the kernel allows (net.core.somaxconn caps it), so a burst of 10,000 connects is
// queued instead of dropped into SYN retransmits.
inline int listen_loopback(const char* program, int port, int extra_flags) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | extra_flags, 0);
  if (fd < 0) fail(program, "socket");
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  const sockaddr_in address = loopback_address(port);
  if (bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) fail(program, "bind");
  if (listen(fd, SOMAXCONN) != 0) fail(program, "listen");
  return fd;
}

// FdReserve keeps one descriptor in hand for the out-of-descriptors case: accept() then fails
// with EMFILE and leaves the connection queued, so an edge-triggered or blocking acceptor
// would spin or stall. Spending the reserve to accept and close it refuses that client
// cleanly; the first refusal is reported so a too-low limit is visible.
class FdReserve {
 public:
  explicit FdReserve(const char* program) : program_(program) { reopen(); }
  ~FdReserve() {
    if (fd_ >= 0) close(fd_);
  }
  FdReserve(const FdReserve&) = delete;
  FdReserve& operator=(const FdReserve&) = delete;

  void refuse_one(int listen_fd) {
    if (!warned_) {
      std::fprintf(stderr, "%s: out of file descriptors, refusing connections: %s\n", program_,
                   std::strerror(errno));
      warned_ = true;
    }
    if (fd_ >= 0) close(fd_);
    const int victim = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (victim >= 0) close(victim);
    reopen();
  }

 private:
  void reopen() { fd_ = open("/dev/null", O_RDONLY | O_CLOEXEC); }

  const char* program_;
  int fd_ = -1;
  bool warned_ = false;
};

inline bool out_of_fds(int error) { return error == EMFILE || error == ENFILE; }

// epoll_watch adds `fd` to `epoll_fd` (or with EPOLL_CTL_MOD re-arms it) for `events`, keyed by
// the descriptor itself: the servers index their state by descriptor.
inline void epoll_watch(const char* program, int epoll_fd, int fd, uint32_t events, int op = EPOLL_CTL_ADD) {
  epoll_event event{};
  event.events = events;
  event.data.fd = fd;
  if (epoll_ctl(epoll_fd, op, fd, &event) != 0) fail(program, "epoll_ctl");
}

// epoll_wait_events waits without a timeout for at most `max` events; EINTR is not an event.
inline int epoll_wait_events(const char* program, int epoll_fd, epoll_event* events, int max) {
  for (;;) {
    const int ready = epoll_wait(epoll_fd, events, max, -1);
    if (ready >= 0) return ready;
    if (errno != EINTR) fail(program, "epoll_wait");
  }
}

// accept_pending accepts every connection queued on the non-blocking `listen_fd` (an
// edge-triggered listener must take them all now) as non-blocking descriptors with TCP_NODELAY
// and hands each to `on_connection(fd)`; out of descriptors, `reserve` refuses the client.
template <typename OnConnection>
void accept_pending(const char* program, int listen_fd, FdReserve& reserve, OnConnection&& on_connection) {
  for (;;) {
    const int fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      set_nodelay(fd);
      on_connection(fd);
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    if (out_of_fds(errno)) {
      reserve.refuse_one(listen_fd);
      continue;
    }
    fail(program, "accept4");
  }
}

inline double cpu_seconds(const rusage& usage) {
  const auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

inline double own_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return cpu_seconds(usage);
}

}  // namespace aem_load
