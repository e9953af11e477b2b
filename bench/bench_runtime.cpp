// bench_runtime.cpp — the runtime core against its baselines. Each benchmark is one operation
// per iteration; compare them as ratios from the same run (scripts/bench_ratios.py).
#include "bench_config.hpp"

#include <aem/capsule.hpp>
#include <aem/cross_core.hpp>
#include <aem/event.hpp>
#include <aem/net.hpp>
#include <aem/net/events.hpp>
#include <aem/runtime.hpp>
#include <aem/timer.hpp>

#include <benchmark/benchmark.h>
#include <boost/context/fiber.hpp>
#include <boost/context/pooled_fixedsize_stack.hpp>

#include "thread_ping_pong.hpp"

#include <thread>

namespace ctx = boost::context;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t kStackSize = 64 * 1024;

aem::Config bench_config(unsigned cores) {
  aem::Config config;
  config.cores = cores;
  config.capsules_per_core = 64;
  config.stack_size = kStackSize;
  aem_bench::without_stall_reports(config);
  return config;
}

// BM_RawContextSwitch: two bare Boost.Context fibers; one iteration switches there and back.
void BM_RawContextSwitch(benchmark::State& state) {
  ctx::fiber partner([](ctx::fiber&& caller) {
    for (;;) caller = std::move(caller).resume();
    return std::move(caller);
  });
  for (auto _ : state) partner = std::move(partner).resume();
}
BENCHMARK(BM_RawContextSwitch);

// yield_pair times `state`'s iterations as yields from the calling capsule to a partner capsule
// that yields back.
void yield_pair(benchmark::State& state) {
  bool done = false;
  auto partner = aem::spawn([&] {
    while (!done) aem::this_capsule::yield();
  });
  for (auto _ : state) aem::this_capsule::yield();
  done = true;
  partner->join();
}

// BM_Yield: two capsules yielding to each other through the scheduler; one iteration is one
// yield each (there and back), the same two switches as BM_RawContextSwitch.
void BM_Yield(benchmark::State& state) {
  aem::Runtime rt(bench_config(1));
  rt.run([&] { yield_pair(state); });
}
BENCHMARK(BM_Yield);

// BM_YieldIdleIo: BM_Yield on a core that also keeps an idle multishot accept in flight, as a
// server's core does. Whenever the yielding pair hands control to the loop (once per
// Config::run_budget switches), the loop must learn that the kernel has nothing for it; on
// io_uring with TASKRUN_FLAG that is a look at the ring, not an io_uring_enter.
void BM_YieldIdleIo(benchmark::State& state) {
  aem::Runtime rt(bench_config(1));
  rt.run([&] {
    auto listener = aem::TcpListener::bind(aem::SocketAddress::ipv4_loopback(0));
    if (!listener) return state.SkipWithError("bind failed");
    auto accepting = aem::on_accept(*listener, [](aem::TcpStream) {});
    if (!accepting) return state.SkipWithError("on_accept failed");
    yield_pair(state);
    (void)aem::cancel(*accepting);
  });
}
BENCHMARK(BM_YieldIdleIo);

// BM_YieldOwnFpEnv: BM_Yield with both capsules spawned with SpawnOptions::own_fp_env, so
// every switch also saves and restores the floating-point control state: what the option costs.
void BM_YieldOwnFpEnv(benchmark::State& state) {
  aem::Runtime rt(bench_config(1));
  rt.run([&] {
    bool done = false;
    auto partner = aem::spawn(
        [&] {
          while (!done) aem::this_capsule::yield();
        },
        {.own_fp_env = true});
    auto measured = aem::spawn(
        [&] {
          for (auto _ : state) aem::this_capsule::yield();
          done = true;
        },
        {.own_fp_env = true});
    measured->join();
    partner->join();
  });
}
BENCHMARK(BM_YieldOwnFpEnv);

// BM_SpawnJoin: spawn a capsule that returns a value, then join it (guard pages on).
void BM_SpawnJoin(benchmark::State& state) {
  aem::Runtime rt(bench_config(1));
  rt.run([&] {
    int sum = 0;
    for (auto _ : state) {
      auto c = aem::spawn([] { return 1; });
      sum += c->join();
    }
    benchmark::DoNotOptimize(sum);
  });
}
BENCHMARK(BM_SpawnJoin);

// BM_BoostPooledFiber: a Boost.Context fiber on pooled_fixedsize_stack: create, run, destroy.
void BM_BoostPooledFiber(benchmark::State& state) {
  ctx::pooled_fixedsize_stack pool(kStackSize);
  int sum = 0;
  for (auto _ : state) {
    ctx::fiber f(std::allocator_arg, pool, [&sum](ctx::fiber&& caller) {
      ++sum;
      return std::move(caller);
    });
    f = std::move(f).resume();
  }
  benchmark::DoNotOptimize(sum);
}
BENCHMARK(BM_BoostPooledFiber);

// BM_ThreadSpawnJoin: std::thread create + join.
void BM_ThreadSpawnJoin(benchmark::State& state) {
  int sum = 0;
  for (auto _ : state) {
    std::thread t([&sum] { ++sum; });
    t.join();
  }
  benchmark::DoNotOptimize(sum);
}
BENCHMARK(BM_ThreadSpawnJoin)->UseRealTime();

// BM_TimerArmCancel: register a one-shot timer, then cancel it (public API).
void BM_TimerArmCancel(benchmark::State& state) {
  aem::Runtime rt(bench_config(1));
  rt.run([&] {
    for (auto _ : state) {
      auto id = aem::after(1s, [] {});
      benchmark::DoNotOptimize(aem::cancel(*id));
    }
  });
}
BENCHMARK(BM_TimerArmCancel);

// cross_core_round_trips times `state`'s iterations as round trips of a value to core 1 and
// back (aem::submit suspends only the calling capsule), after `gaps` rounds each followed by a
// pause of `gap`.
void cross_core_round_trips(benchmark::State& state, const aem::Config& config, int gaps = 0,
                            aem::Duration gap = {}) {
  aem::Runtime rt(config);
  rt.run([&] {
    long v = 0;
    for (int i = 0; i < gaps; ++i) {
      v = *aem::submit(1, [v] { return v + 1; });
      aem::this_capsule::sleep_for(gap);
    }
    for (auto _ : state) v = *aem::submit(1, [v] { return v + 1; });
    benchmark::DoNotOptimize(v);
  });
}

// BM_CrossCorePingPong: a value to core 1 and back, default Config (the idle poll adapts).
void BM_CrossCorePingPong(benchmark::State& state) { cross_core_round_trips(state, bench_config(2)); }
BENCHMARK(BM_CrossCorePingPong)->UseRealTime();

// BM_CrossCorePingPongNoSpin: the same with Config::idle_spin = 0: both cores sleep in the
// kernel at once, so every hand-over is a sleep and a wake-up, as with the thread baseline.
void BM_CrossCorePingPongNoSpin(benchmark::State& state) {
  aem::Config config = bench_config(2);
  config.idle_spin = std::chrono::nanoseconds(0);
  cross_core_round_trips(state, config);
}
BENCHMARK(BM_CrossCorePingPongNoSpin)->UseRealTime();

// BM_CrossCorePingPongAfterGaps: back-to-back round trips after rounds separated by pauses
// far longer than Config::idle_spin, which shrink both cores' poll to nothing. The poll must
// come back once the round trips follow each other closely, even where waking a sleeping
// core takes longer than idle_spin (then every idle stretch that ends in a wake-up looks
// longer than the limit).
void BM_CrossCorePingPongAfterGaps(benchmark::State& state) {
  cross_core_round_trips(state, bench_config(2), 16, std::chrono::microseconds(500));
}
BENCHMARK(BM_CrossCorePingPongAfterGaps)->UseRealTime();

// BM_ThreadPingPong: the same round trip between two std::threads with a condition variable.
void BM_ThreadPingPong(benchmark::State& state) {
  aem_bench::ThreadPingPong pp;
  long v = 0;
  for (auto _ : state) v = pp.round_trip(v);
  benchmark::DoNotOptimize(v);
}
BENCHMARK(BM_ThreadPingPong)->UseRealTime();

}  // namespace
