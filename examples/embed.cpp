// embed — aem inside a program that was not written for it: an existing service with its own
// std::thread worker pool and its own poll(2) event loop starts an aem runtime on background
// threads, hands it work, gets the results back both ways a legacy program can take them, and
// shuts everything down in order. It runs by itself and exits 0 when every result checked out.
//
//   1. Futures. The service's worker threads call Runtime::submit(core, fn) and block on the
//      std::future — fine for a thread that has nothing else to do. Inside, the job is written
//      in aem's blocking style: it spawns two capsules that "call backends" (sleep_for stands
//      for the network round trip) in parallel and joins them; no thread is blocked meanwhile.
//   2. A pollable descriptor. The event-loop thread must never block on a future, so capsules
//      post their results to an aem::CompletionFd, whose fd() the loop polls beside its own
//      descriptors (here: an eventfd the rest of the service uses to ask the loop to quit).
//   3. Shutdown: the workers are joined, the loop is told to quit, the queue is closed (a late
//      post is refused with errc::channel_closed, not lost silently), and Runtime::stop() winds
//      the cores down.
//
//   aem_embed [--cores N]   (default 2)
#include <aem/capsule.hpp>
#include <aem/completion_fd.hpp>
#include <aem/runtime.hpp>

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <future>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

constexpr int kWorkerThreads = 4;
constexpr int kJobsPerWorker = 25;
constexpr int kLoopLookups = 100;
// How long the foreign loop waits for anything at all before it declares the program stuck.
constexpr int kLoopStallMs = 10'000;

// Quote is what a job computes: a price from two backends.
struct Quote {
  int item = 0;
  long price = 0;
};

long expected_price(int item) { return 100L * item + 7; }

// fetch_base and fetch_markup stand for backend calls. Call from a capsule: the sleep
// suspends only the capsule.
long fetch_base(int item) {
  aem::this_capsule::sleep_for(2ms);
  return 100L * item;
}
long fetch_markup(int /*item*/) {
  aem::this_capsule::sleep_for(3ms);
  return 7;
}

// price_item asks both backends at once and combines their answers. Call from a capsule.
// Returns -1 if a backend capsule could not be spawned (the pool is exhausted).
long price_item(int item) {
  auto base = aem::spawn([item] { return fetch_base(item); });
  auto markup = aem::spawn([item] { return fetch_markup(item); });
  if (!base || !markup) return -1;
  return base->join() + markup->join();
}

// run_worker_pool is the service's existing thread pool: each worker submits jobs to aem and
// waits for their futures. Returns how many results were wrong.
int run_worker_pool(aem::Runtime& runtime) {
  std::atomic<int> wrong{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkerThreads; ++w) {
    workers.emplace_back([&runtime, &wrong, w] {
      for (int j = 0; j < kJobsPerWorker; ++j) {
        const int item = w * kJobsPerWorker + j;
        const unsigned core = static_cast<unsigned>(item) % runtime.cores();
        std::future<long> price = runtime.submit(core, [item] { return price_item(item); });
        try {
          if (price.get() != expected_price(item)) ++wrong;
        } catch (const std::system_error& error) {  // the runtime is not running or stopping
          std::fprintf(stderr, "embed: job %d: %s\n", item, error.what());
          ++wrong;
        }
      }
    });
  }
  for (std::thread& worker : workers) worker.join();
  return wrong.load();
}

// run_foreign_loop is the service's poll(2) loop. It starts lookups that report through
// `results`, then serves `results.fd()` and `quit_fd` until every lookup answered and a quit
// was asked for. Returns how many results were missing or wrong.
int run_foreign_loop(aem::Runtime& runtime, const aem::CompletionFd<Quote>& results, int quit_fd) {
  for (int item = 0; item < kLoopLookups; ++item) {
    // The future is dropped: the answer comes through `results`, the loop never blocks on it.
    (void)runtime.submit(static_cast<unsigned>(item) % runtime.cores(), [item, results] {
      const Quote quote{item, price_item(item)};
      if (auto posted = results.post(quote); !posted) {
        std::fprintf(stderr, "embed: lookup %d dropped: %s\n", item, posted.error().message().c_str());
      }
    });
  }
  int answered = 0;
  int wrong = 0;
  bool quit = false;
  std::vector<Quote> ready;
  while (answered < kLoopLookups || !quit) {
    pollfd fds[] = {{results.fd(), POLLIN, 0}, {quit_fd, POLLIN, 0}};
    const int n = ::poll(fds, 2, kLoopStallMs);
    if (n == 0) {
      std::fprintf(stderr, "embed: the loop heard nothing for %d ms (%d of %d answers)\n", kLoopStallMs, answered,
                   kLoopLookups);
      return kLoopLookups - answered + wrong;
    }
    if (n < 0) continue;  // EINTR
    if ((fds[0].revents & POLLIN) != 0) {
      results.drain(ready);
      for (const Quote& quote : ready) wrong += quote.price == expected_price(quote.item) ? 0 : 1;
      answered += static_cast<int>(ready.size());
      ready.clear();
    }
    if ((fds[1].revents & POLLIN) != 0) quit = true;
  }
  return wrong;
}

bool parse_cores(int argc, char** argv, unsigned& cores) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--cores" && i + 1 < argc) {
      const std::string_view value = argv[++i];
      const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), cores);
      if (error == std::errc() && end == value.data() + value.size() && cores >= 1 && cores <= 64) continue;
    }
    std::fprintf(stderr, "usage: aem_embed [--cores N]   (1 <= N <= 64, default 2)\n");
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  unsigned cores = 2;
  if (!parse_cores(argc, argv, cores)) return 2;

  // The runtime runs beside the service's threads, not instead of them.
  aem::Runtime runtime(aem::Config{.cores = cores});
  if (auto started = runtime.start(); !started) {
    std::fprintf(stderr, "embed: cannot start aem: %s\n", started.error().message().c_str());
    return 1;
  }
  auto results = aem::CompletionFd<Quote>::create();
  const int quit_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (!results || quit_fd < 0) {
    std::fprintf(stderr, "embed: cannot create descriptors: %s\n",
                 results ? std::strerror(errno) : results.error().message().c_str());
    return 1;
  }

  int loop_errors = 0;
  std::thread loop([&] { loop_errors = run_foreign_loop(runtime, *results, quit_fd); });
  const auto started = std::chrono::steady_clock::now();
  const int pool_errors = run_worker_pool(runtime);
  const double pool_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();

  // Shutdown, in the order that loses nothing: the loop first (it quits once every lookup it
  // started has answered), then the queue, then the runtime.
  const std::uint64_t quit = 1;
  if (::write(quit_fd, &quit, sizeof quit) != sizeof quit) std::perror("embed: write(quit)");
  loop.join();
  results->close();
  const auto late = runtime.submit(0, [r = *results] { return r.post(Quote{}).error(); }).get();
  runtime.stop();
  ::close(quit_fd);

  std::printf("embed: %d jobs from %d worker threads through futures in %.1f ms (%d wrong)\n",
              kWorkerThreads * kJobsPerWorker, kWorkerThreads, pool_ms, pool_errors);
  std::printf("embed: %d lookups answered through a poll(2) loop on CompletionFd::fd() (%d missing or wrong)\n",
              kLoopLookups, loop_errors);
  std::printf("embed: a post after close: %s; runtime stopped: %s\n", late.message().c_str(),
              runtime.running() ? "no" : "yes");
  return pool_errors == 0 && loop_errors == 0 && late == aem::errc::channel_closed ? 0 : 1;
}
