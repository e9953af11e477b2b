// bench_blocking.cpp — a round trip of trivial work through aem::blocking against the usual
// ways to run a blocking function off the calling thread: std::async, and a std::packaged_task
// on a small hand-written pool. Every caller is pinned to the first CPU of the process, as a
// one-core runtime's core is; the hand-written pool's threads run on the other CPUs, as aem's
// pool threads do (all CPUs on a one-CPU machine).
// Compare as ratios from the same run (scripts/bench_ratios.py).
#include "bench_config.hpp"

#include <aem/blocking.hpp>
#include <aem/runtime.hpp>

#include <benchmark/benchmark.h>

#include <pthread.h>
#include <sched.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

namespace {

constexpr unsigned kPoolThreads = 4;

// PinnedCaller pins the calling thread to the process's first CPU for its lifetime.
class PinnedCaller {
 public:
  PinnedCaller() {
    restore_ = ::sched_getaffinity(0, sizeof saved_, &saved_) == 0;
    if (!restore_) return;
    cpu_set_t one;
    CPU_ZERO(&one);
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (CPU_ISSET(cpu, &saved_)) {
        CPU_SET(cpu, &one);
        break;
      }
    }
    ::pthread_setaffinity_np(::pthread_self(), sizeof one, &one);
  }
  ~PinnedCaller() {
    if (restore_) ::pthread_setaffinity_np(::pthread_self(), sizeof saved_, &saved_);
  }
  PinnedCaller(const PinnedCaller&) = delete;
  PinnedCaller& operator=(const PinnedCaller&) = delete;
  const cpu_set_t& process_cpus() const noexcept { return saved_; }
  // other_cpus are the process's CPUs but the caller's (all of them if it has only one).
  cpu_set_t other_cpus() const noexcept {
    cpu_set_t others = saved_;
    if (CPU_COUNT(&saved_) < 2) return others;
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (CPU_ISSET(cpu, &saved_)) {
        CPU_CLR(cpu, &others);
        break;
      }
    }
    return others;
  }

 private:
  cpu_set_t saved_;
  bool restore_ = false;
};

// TaskPool is the hand-written baseline: threads taking std::packaged_tasks from a deque under
// a mutex and a condition variable.
class TaskPool {
 public:
  TaskPool(unsigned threads, const cpu_set_t& cpus) {
    for (unsigned i = 0; i < threads; ++i) {
      workers_.emplace_back([this, cpus] {
        ::pthread_setaffinity_np(::pthread_self(), sizeof cpus, &cpus);
        serve();
      });
    }
  }
  ~TaskPool() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& w : workers_) w.join();
  }
  TaskPool(const TaskPool&) = delete;
  TaskPool& operator=(const TaskPool&) = delete;

  std::future<long> submit(std::packaged_task<long()> task) {
    std::future<long> result = task.get_future();
    {
      std::lock_guard lock(mutex_);
      tasks_.push_back(std::move(task));
    }
    cv_.notify_one();
    return result;
  }

 private:
  void serve() {
    std::unique_lock lock(mutex_);
    for (;;) {
      // Re-checked every 10 ms: glibc's condition variable can lose a notify_one among several
      // waiters (sourceware bug 25847), which hung this baseline once. Rare enough not to move
      // a median.
      while (!stop_ && tasks_.empty()) cv_.wait_for(lock, std::chrono::milliseconds(10));
      if (tasks_.empty()) return;
      std::packaged_task<long()> task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      task();
      lock.lock();
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::packaged_task<long()>> tasks_;
  std::vector<std::thread> workers_;
  bool stop_ = false;
};

// blocking_round_trips times `state`'s iterations as calls of v + 1 through aem::blocking
// from a capsule of a one-core runtime with `idle_spin` (how long the idle core polls).
void blocking_round_trips(benchmark::State& state, std::chrono::nanoseconds idle_spin) {
  aem::Config config;
  config.cores = 1;
  config.blocking_threads = kPoolThreads;
  config.idle_spin = idle_spin;
  aem_bench::without_stall_reports(config);
  aem::Runtime rt(config);
  rt.run([&] {
    long v = 0;
    for (auto _ : state) v = *aem::blocking([v] { return v + 1; });
    benchmark::DoNotOptimize(v);
  });
}

// BM_BlockingRoundTrip: with the default Config::idle_spin.
void BM_BlockingRoundTrip(benchmark::State& state) { blocking_round_trips(state, aem::Config{}.idle_spin); }
BENCHMARK(BM_BlockingRoundTrip)->UseRealTime();

// BM_BlockingRoundTripNoSpin: with idle_spin 0 the core sleeps at once, as the baselines'
// callers do: each call costs two wake-ups (the pool thread's and the core's).
void BM_BlockingRoundTripNoSpin(benchmark::State& state) { blocking_round_trips(state, std::chrono::nanoseconds(0)); }
BENCHMARK(BM_BlockingRoundTripNoSpin)->UseRealTime();

// BM_AsyncRoundTrip: the same work through std::async (a thread per call in libstdc++).
void BM_AsyncRoundTrip(benchmark::State& state) {
  PinnedCaller pinned;
  long v = 0;
  for (auto _ : state) v = std::async(std::launch::async, [v] { return v + 1; }).get();
  benchmark::DoNotOptimize(v);
}
BENCHMARK(BM_AsyncRoundTrip)->UseRealTime();

// task_pool_round_trips times `state`'s iterations as std::packaged_tasks of v + 1 on a
// TaskPool whose threads run on `cpus`.
void task_pool_round_trips(benchmark::State& state, const cpu_set_t& cpus) {
  TaskPool pool(kPoolThreads, cpus);
  long v = 0;
  for (auto _ : state) v = pool.submit(std::packaged_task<long()>([v] { return v + 1; })).get();
  benchmark::DoNotOptimize(v);
}

// BM_TaskPoolRoundTrip: the pool's threads on the other CPUs, as aem's.
void BM_TaskPoolRoundTrip(benchmark::State& state) {
  PinnedCaller pinned;
  task_pool_round_trips(state, pinned.other_cpus());
}
BENCHMARK(BM_TaskPoolRoundTrip)->UseRealTime();

// BM_TaskPoolRoundTripAnyCpu: the pool's threads on every CPU, the caller's too, where the
// kernel may wake a worker next to its sleeping caller (cheaper than a cross-CPU wake-up).
void BM_TaskPoolRoundTripAnyCpu(benchmark::State& state) {
  PinnedCaller pinned;
  task_pool_round_trips(state, pinned.process_cpus());
}
BENCHMARK(BM_TaskPoolRoundTripAnyCpu)->UseRealTime();

}  // namespace
