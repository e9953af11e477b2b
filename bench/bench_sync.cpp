// bench_sync.cpp — the synchronisation primitives against their std:: baselines. One operation
// per iteration; compare them as ratios from the same run.
//
//   BM_MutexUncontended         lock + unlock of an aem::Mutex by one capsule
//   BM_StdMutexUncontended      the same with std::mutex on a plain thread
//   BM_SemaphoreUncontended     acquire + release of an aem::Semaphore by one capsule
//   BM_ChannelSendReceive       send + receive on one capsule (buffered, no suspension)
//   BM_MutexContended/N         lock + unlock by the timed capsule while N-1 capsules on the same
//                               core (and on core 1) compete: FIFO hand-off and suspensions
//   BM_ChannelPingPongCrossCore a value to a capsule on core 1 and back through two channels
//   BM_ChannelPingPongSameCore  the same with both capsules on core 0 (switches only)
#include "bench_config.hpp"

#include <aem/capsule.hpp>
#include <aem/channel.hpp>
#include <aem/mutex.hpp>
#include <aem/runtime.hpp>
#include <aem/semaphore.hpp>

#include <benchmark/benchmark.h>

#include <atomic>
#include <mutex>
#include <vector>

namespace {

aem::Config sync_bench_config(unsigned cores) {
  aem::Config config;
  config.cores = cores;
  config.capsules_per_core = 64;
  aem_bench::without_stall_reports(config);
  return config;
}

// lock_unlock_loop is the body both mutex benchmarks share: one lock + unlock per iteration.
template <typename M>
void lock_unlock_loop(benchmark::State& state, M& mutex) {
  long counter = 0;
  for (auto _ : state) {
    mutex.lock();
    ++counter;
    mutex.unlock();
  }
  benchmark::DoNotOptimize(counter);
}

void BM_MutexUncontended(benchmark::State& state) {
  aem::Runtime rt(sync_bench_config(1));
  rt.run([&] {
    aem::Mutex mutex;
    lock_unlock_loop(state, mutex);
  });
}
BENCHMARK(BM_MutexUncontended);

void BM_StdMutexUncontended(benchmark::State& state) {
  std::mutex mutex;
  lock_unlock_loop(state, mutex);
}
BENCHMARK(BM_StdMutexUncontended);

void BM_SemaphoreUncontended(benchmark::State& state) {
  aem::Runtime rt(sync_bench_config(1));
  rt.run([&] {
    aem::Semaphore sem(1);
    for (auto _ : state) {
      sem.acquire();
      sem.release();
    }
  });
}
BENCHMARK(BM_SemaphoreUncontended);

void BM_ChannelSendReceive(benchmark::State& state) {
  aem::Runtime rt(sync_bench_config(1));
  rt.run([&] {
    aem::Channel<long> ch(16);
    long v = 0;
    for (auto _ : state) {
      (void)ch.send(v + 1);
      v = *ch.receive();
    }
    benchmark::DoNotOptimize(v);
  });
}
BENCHMARK(BM_ChannelSendReceive);

void BM_MutexContended(benchmark::State& state) {
  const auto competitors = static_cast<int>(state.range(0)) - 1;
  aem::Runtime rt(sync_bench_config(2));
  rt.run([&] {
    aem::Mutex mutex;
    long counter = 0;
    std::atomic<bool> stop{false};
    std::vector<aem::Capsule<void>> others;
    for (int i = 0; i < competitors; ++i) {
      auto c = aem::spawn(
          [&] {
            while (!stop.load(std::memory_order_relaxed)) {
              std::lock_guard guard(mutex);
              ++counter;
            }
          },
          {.core = static_cast<unsigned>(i % 2)});
      if (c) others.push_back(std::move(*c));
    }
    for (auto _ : state) {
      mutex.lock();
      ++counter;
      mutex.unlock();
    }
    stop = true;
    for (auto& c : others) c.join();
    benchmark::DoNotOptimize(counter);
  });
}
BENCHMARK(BM_MutexContended)->Arg(2)->Arg(8)->UseRealTime();

void channel_ping_pong(benchmark::State& state, unsigned echo_core) {
  aem::Runtime rt(sync_bench_config(2));
  rt.run([&] {
    aem::Channel<long> ping(1);
    aem::Channel<long> pong(1);
    auto echo = aem::spawn(
        [&] {
          while (auto v = ping.receive()) (void)pong.send(*v + 1);
        },
        {.core = echo_core});
    long v = 0;
    for (auto _ : state) {
      (void)ping.send(long{v});
      v = *pong.receive();
    }
    ping.close();
    if (echo) echo->join();
    benchmark::DoNotOptimize(v);
  });
}

void BM_ChannelPingPongCrossCore(benchmark::State& state) { channel_ping_pong(state, 1); }
BENCHMARK(BM_ChannelPingPongCrossCore)->UseRealTime();

void BM_ChannelPingPongSameCore(benchmark::State& state) { channel_ping_pong(state, 0); }
BENCHMARK(BM_ChannelPingPongSameCore)->UseRealTime();

}  // namespace
