// pool_work_server.cpp — the fixed-thread-pool baseline of bench/fiber_vs_thread: one epoll
// thread accepts and watches every connection; a readable connection is queued to a pool of
// --threads worker threads, one of which reads its requests, does their work (workload.hpp:
// spin, then sleep), writes the replies and re-arms the connection. This is the classic
// "event loop in front of an executor" server: concurrency is capped by the pool size, not by
// the number of connections, so a request waits in the queue while every worker sleeps.
//
// EPOLLONESHOT gives a connection to one worker at a time (no two workers interleave replies
// on one socket) without any per-connection lock; the re-arm is the one epoll_ctl per request
// the design costs.
//
// usage: aem_pool_work_server [--port N] [--threads N] [workload flags]   (until SIGINT/SIGTERM)
#include <sys/epoll.h>

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "../load/common.hpp"
#include "../load/workload.hpp"

namespace {

using aem_load::fail;

constexpr const char* kUsage =
    "usage: aem_pool_work_server [--port N] [--threads N] [--cpu-us N] [--sleep-us N]\n"
    "                            [--spin-per-us X] [--request-bytes N] [--calibrate]\n"
    "An epoll thread on 127.0.0.1 hands readable connections to --threads workers (default 64),\n"
    "which do each request's work and reply (bench/fiber_vs_thread/README.md).\n"
    "Serves until SIGINT or SIGTERM.";

constexpr long kDefaultThreads = 64;
constexpr long kMaxThreads = 4096;
constexpr int kMaxEvents = 512;
constexpr std::size_t kReadBufferBytes = 16 * 1024;
// Descriptors tracked at most (the per-descriptor table is sized once from RLIMIT_NOFILE).
constexpr rlim_t kMaxTrackedFds = 1 << 20;
constexpr uint32_t kConnectionEvents = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;

// ReadyQueue holds connections that are readable and wait for a worker.
class ReadyQueue {
 public:
  void push(int fd) {
    {
      const std::lock_guard lock(mutex_);
      fds_.push_back(fd);
    }
    ready_.notify_one();
  }

  int pop() {
    std::unique_lock lock(mutex_);
    ready_.wait(lock, [this] { return !fds_.empty(); });
    const int fd = fds_.front();
    fds_.pop_front();
    return fd;
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<int> fds_;
};

class PoolServer {
 public:
  PoolServer(const char* program, int port, const aem_load::Workload& work, rlim_t fd_limit)
      : program_(program), work_(work), reserve_(program) {
    listen_fd_ = aem_load::listen_loopback(program, port, SOCK_NONBLOCK);
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) fail(program, "epoll_create1");
    // Indexed by descriptor and sized once, so workers never see it reallocate under them.
    requests_.assign(static_cast<std::size_t>(std::min(fd_limit, kMaxTrackedFds)), aem_load::RequestCounter(work.request_bytes));
    aem_load::epoll_watch(program, epoll_fd_, listen_fd_, EPOLLIN | EPOLLET);
  }

  void start_workers(long count) {
    for (long i = 0; i < count; ++i) std::thread([this] { work_forever(); }).detach();
  }

  // run dispatches events until `stop_fd` becomes readable.
  void run(int stop_fd) {
    aem_load::epoll_watch(program_, epoll_fd_, stop_fd, EPOLLIN);
    epoll_event events[kMaxEvents];
    for (;;) {
      const int ready = aem_load::epoll_wait_events(program_, epoll_fd_, events, kMaxEvents);
      for (int i = 0; i < ready; ++i) {
        const int fd = events[i].data.fd;
        if (fd == stop_fd) return;
        if (fd == listen_fd_) {
          aem_load::accept_pending(program_, listen_fd_, reserve_, [this](int accepted) { add_connection(accepted); });
        } else {
          queue_.push(fd);
        }
      }
    }
  }

  uint64_t accepted() const { return accepted_; }

 private:
  void add_connection(int fd) {
    if (static_cast<std::size_t>(fd) >= requests_.size()) {
      close(fd);  // beyond the table: only possible with an unlimited RLIMIT_NOFILE
      return;
    }
    requests_[static_cast<std::size_t>(fd)] = aem_load::RequestCounter(work_.request_bytes);
    ++accepted_;
    aem_load::epoll_watch(program_, epoll_fd_, fd, kConnectionEvents);
  }

  void work_forever() {
    std::vector<char> buffer(kReadBufferBytes);
    for (;;) {
      const int fd = queue_.pop();
      if (serve(fd, buffer)) aem_load::epoll_watch(program_, epoll_fd_, fd, kConnectionEvents, EPOLL_CTL_MOD);
      else close(fd);  // also leaves the epoll set: nobody else holds the description
    }
  }

  // serve answers every request that has arrived on `fd`; false when the connection is over.
  bool serve(int fd, std::vector<char>& buffer) {
    for (;;) {
      const ssize_t got = read(fd, buffer.data(), buffer.size());
      if (got == 0) return false;
      if (got < 0) {
        if (errno == EINTR) continue;
        return errno == EAGAIN || errno == EWOULDBLOCK;
      }
      const auto size = static_cast<std::size_t>(got);
      for (std::size_t n = requests_[static_cast<std::size_t>(fd)].complete(size); n > 0; --n) {
        work_.burn_cpu();
        work_.sleep_thread();
      }
      if (!write_all(fd, buffer.data(), size)) return false;
      if (size < buffer.size()) return true;  // a short read drained the socket (epoll(7))
    }
  }

  // write_all blocks the worker until the socket took everything: a worker owns its
  // connection until the reply is out, like a blocking executor task.
  static bool write_all(int fd, const char* data, std::size_t size) {
    while (size > 0) {
      const ssize_t put = write(fd, data, size);
      if (put >= 0) {
        data += put;
        size -= static_cast<std::size_t>(put);
        continue;
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return false;
      pollfd writable{fd, POLLOUT, 0};
      if (poll(&writable, 1, -1) < 0 && errno != EINTR) return false;
    }
    return true;
  }

  const char* program_;
  const aem_load::Workload work_;
  aem_load::FdReserve reserve_;
  int listen_fd_ = -1;
  int epoll_fd_ = -1;
  std::vector<aem_load::RequestCounter> requests_;
  ReadyQueue queue_;
  uint64_t accepted_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  aem_load::Args args(argc, argv, kUsage);
  const int port = args.port();
  const long threads = args.integer("--threads", kDefaultThreads, 1, kMaxThreads);
  const aem_load::Workload work = aem_load::parse_workload(args);
  args.done();
  const char* program = args.program();
  const rlim_t fd_limit = aem_load::raise_fd_limit(program);
  const aem_load::StopSignals stop(program);  // before any thread, so all inherit the mask
  PoolServer server(program, port, work, fd_limit);
  server.start_workers(threads);
  std::fprintf(stderr, "%s: listening on 127.0.0.1:%d, %ld workers\n", program, port, threads);
  server.run(stop.fd());
  std::fprintf(stderr, "%s: stopped after %llu connections\n", program,
               static_cast<unsigned long long>(server.accepted()));
  // Workers sit in blocking calls; ending the process is how this design stops.
  std::fflush(nullptr);
  std::_Exit(EXIT_SUCCESS);
}
