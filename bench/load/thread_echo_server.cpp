// thread_echo_server.cpp — the other conventional baseline: one blocking thread per
// connection. Threads are created with pthread_create rather than std::thread because
// std::thread cannot choose a stack size: the default 8 MiB reservation times 10,000
// connections is 80 GiB of address space, while 64 KiB (of which an idle thread touches a few
// pages) lets 10,000 threads fit comfortably.
//
// usage: aem_thread_echo_server [--port N] [workload flags]   (serves 127.0.0.1:N until SIGINT/SIGTERM)
// With workload flags (workload.hpp) every request costs a CPU spin and a sleep before its
// echo: the thread-per-connection server of bench/fiber_vs_thread.
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>

#include "common.hpp"
#include "workload.hpp"

namespace {

using aem_load::fail;

constexpr const char* kUsage =
    "usage: aem_thread_echo_server [--port N] [--cpu-us N] [--sleep-us N] [--spin-per-us X]\n"
    "                              [--request-bytes N] [--calibrate]\n"
    "Thread-per-connection blocking echo server on 127.0.0.1 (bench/load/README.md);\n"
    "each connection thread has a 64 KiB stack. Each request of --request-bytes costs\n"
    "--cpu-us of spin and --sleep-us of sleep before its echo (bench/fiber_vs_thread/README.md).\n"
    "Serves until SIGINT or SIGTERM.";

constexpr std::size_t kStackBytes = 64 * 1024;
// Lives on the connection thread's stack, so it must stay well inside kStackBytes.
constexpr std::size_t kReadBufferBytes = 4 * 1024;

std::atomic<uint64_t> g_accepted{0};
std::atomic<uint64_t> g_echoed_bytes{0};
std::atomic<uint64_t> g_thread_failures{0};
// Set once in main before the first connection thread starts, read-only afterwards.
aem_load::Workload g_work;

bool write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t put = write(fd, data, size);
    if (put < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += put;
    size -= static_cast<std::size_t>(put);
  }
  return true;
}

void* serve_connection(void* argument) {
  const int fd = static_cast<int>(reinterpret_cast<intptr_t>(argument));
  char buffer[kReadBufferBytes];
  uint64_t echoed = 0;
  aem_load::RequestCounter requests(g_work.request_bytes);
  for (;;) {
    const ssize_t got = read(fd, buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    for (std::size_t n = requests.complete(static_cast<std::size_t>(got)); n > 0; --n) {
      g_work.burn_cpu();
      g_work.sleep_thread();
    }
    if (!write_all(fd, buffer, static_cast<std::size_t>(got))) break;
    echoed += static_cast<uint64_t>(got);
  }
  // Counted once per connection: a shared counter per message would itself be a cost the
  // conventional server does not pay.
  g_echoed_bytes.fetch_add(echoed, std::memory_order_relaxed);
  close(fd);
  return nullptr;
}

class ThreadFactory {
 public:
  explicit ThreadFactory(const char* program) {
    if (pthread_attr_init(&attributes_) != 0) fail(program, "pthread_attr_init");
    const auto minimum = static_cast<std::size_t>(sysconf(_SC_THREAD_STACK_MIN));
    pthread_attr_setstacksize(&attributes_, std::max(kStackBytes, minimum));
    pthread_attr_setdetachstate(&attributes_, PTHREAD_CREATE_DETACHED);
  }
  ~ThreadFactory() { pthread_attr_destroy(&attributes_); }
  ThreadFactory(const ThreadFactory&) = delete;
  ThreadFactory& operator=(const ThreadFactory&) = delete;

  // start gives `fd` its thread; on failure (threads-max, memory) the connection is refused
  // and the first failure reported, because a silently dropped client looks like a hang.
  void start(const char* program, int fd) {
    pthread_t thread{};
    const int error =
        pthread_create(&thread, &attributes_, serve_connection, reinterpret_cast<void*>(static_cast<intptr_t>(fd)));
    if (error == 0) return;
    if (g_thread_failures.fetch_add(1, std::memory_order_relaxed) == 0) {
      std::fprintf(stderr, "%s: cannot start a connection thread, refusing connections: %s\n", program,
                   std::strerror(error));
    }
    close(fd);
  }

 private:
  pthread_attr_t attributes_{};
};

void accept_forever(const char* program, int listen_fd) {
  ThreadFactory threads(program);
  aem_load::FdReserve reserve(program);
  for (;;) {
    const int fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (aem_load::out_of_fds(errno)) {
        reserve.refuse_one(listen_fd);
        continue;
      }
      fail(program, "accept4");
    }
    aem_load::set_nodelay(fd);
    g_accepted.fetch_add(1, std::memory_order_relaxed);
    threads.start(program, fd);
  }
}

}  // namespace

int main(int argc, char** argv) {
  aem_load::Args args(argc, argv, kUsage);
  const int port = args.port();
  g_work = aem_load::parse_workload(args);
  args.done();
  const char* program = args.program();
  aem_load::raise_fd_limit(program);
  const aem_load::StopSignals stop(program);  // before any thread, so all inherit the mask
  const int listen_fd = aem_load::listen_loopback(program, port, 0);
  std::thread acceptor(accept_forever, program, listen_fd);
  acceptor.detach();
  std::fprintf(stderr, "%s: listening on 127.0.0.1:%d\n", program, port);
  stop.wait(-1);
  std::fprintf(stderr, "%s: stopped after %llu connections, %llu bytes echoed by closed connections\n", program,
               static_cast<unsigned long long>(g_accepted.load()),
               static_cast<unsigned long long>(g_echoed_bytes.load()));
  // Connection threads sit in blocking reads; ending the process is how this design stops.
  std::fflush(nullptr);
  std::_Exit(EXIT_SUCCESS);
}
