// bench_events.cpp — the event table's hot path: one activation's round trip, and the latency
// from activating a high-priority event to its handler starting, on an idle core and on a core
// saturated with low-priority activations, and the hand-over of a max_active slot from one core
// to another. Ratios: scripts/bench_ratios.py.
#include "bench_config.hpp"

#include <aem/capsule.hpp>
#include <aem/event.hpp>
#include <aem/group.hpp>
#include <aem/runtime.hpp>
#include <aem/wait_group.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <vector>

namespace {

aem::Config events_config() {
  aem::Config config;
  config.cores = 1;
  config.capsules_per_core = 64;
  aem_bench::without_stall_reports(config);
  return config;
}

// BM_Activation: trigger a registered event whose handler runs in a fresh capsule, and yield
// until it has run: one activation — lookup, capsule from the pool, two switches, capsule back
// to the pool — per iteration. Compare with BM_Yield (two switches).
void BM_Activation(benchmark::State& state) {
  aem::Runtime rt(events_config());
  rt.run([&] {
    std::uint64_t handled = 0;
    auto id = aem::on_event([&handled] { ++handled; });
    if (!id) {
      state.SkipWithError("on_event failed");
      return;
    }
    for (auto _ : state) {
      (void)aem::trigger(*id);
      aem::this_capsule::yield();
    }
    if (handled != static_cast<std::uint64_t>(state.iterations())) state.SkipWithError("an activation was not handled");
    (void)aem::cancel(*id);
  });
}
BENCHMARK(BM_Activation);

// percentiles reports the p50 and p99 of `samples` (ns) as counters.
void percentiles(benchmark::State& state, std::vector<std::int64_t>& samples) {
  if (samples.empty()) return;
  std::sort(samples.begin(), samples.end());
  state.counters["p50_ns"] = static_cast<double>(samples[samples.size() / 2]);
  state.counters["p99_ns"] = static_cast<double>(samples[samples.size() * 99 / 100]);
}

// measure_dispatch: each iteration triggers a high-priority event and yields; the handler notes
// when it starts. The sample is the time from before the trigger to the handler's start.
void measure_dispatch(benchmark::State& state) {
  std::vector<std::int64_t> samples;
  samples.reserve(static_cast<std::size_t>(state.max_iterations));
  aem::TimePoint started{};
  auto id = aem::on_event([&started] { started = aem::Clock::now(); }, {.priority = aem::Priority::high});
  if (!id) {
    state.SkipWithError("on_event failed");
    return;
  }
  for (auto _ : state) {
    const aem::TimePoint before = aem::Clock::now();
    (void)aem::trigger(*id);
    aem::this_capsule::yield();
    samples.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(started - before).count());
  }
  (void)aem::cancel(*id);
  percentiles(state, samples);
}

// BM_DispatchLatencyIdle: nothing else runs on the core.
void BM_DispatchLatencyIdle(benchmark::State& state) {
  aem::Runtime rt(events_config());
  rt.run([&] { measure_dispatch(state); });
}
BENCHMARK(BM_DispatchLatencyIdle);

// BM_DispatchLatencyHighUnderFlood: kFlooders low-priority capsules keep activating a
// low-priority event (whose handler does a little work) and yielding, so the ready queue is
// never empty; the measuring capsule runs at low priority among them.
void BM_DispatchLatencyHighUnderFlood(benchmark::State& state) {
  constexpr int kFlooders = 8;
  aem::Runtime rt(events_config());
  rt.run([&] {
    bool done = false;
    std::uint64_t flood_handled = 0;
    auto flood = aem::on_event(
        [&flood_handled] {
          std::uint64_t x = flood_handled;
          for (int i = 0; i < 64; ++i) benchmark::DoNotOptimize(x = x * 2862933555777941757ull + 3037000493ull);
          ++flood_handled;
        },
        {.priority = aem::Priority::low});
    if (!flood) {
      state.SkipWithError("on_event failed");
      return;
    }
    std::vector<aem::Capsule<void>> flooders;
    for (int i = 0; i < kFlooders; ++i) {
      auto c = aem::spawn(
          [&done, id = *flood] {
            while (!done) {
              (void)aem::trigger(id);
              aem::this_capsule::yield();
            }
          },
          {.priority = aem::Priority::low});
      if (c) flooders.push_back(std::move(*c));
    }
    (void)aem::this_capsule::set_priority(aem::Priority::low);
    aem::this_capsule::yield();  // let the flood start
    measure_dispatch(state);
    state.counters["flood_activations"] = static_cast<double>(flood_handled);
    done = true;
    for (auto& c : flooders) c.join();
    (void)aem::cancel(*flood);
  });
}
BENCHMARK(BM_DispatchLatencyHighUnderFlood);

// run_handoff: each iteration triggers a handler on core 0 that triggers one on core 1, both
// registered in a group with `max_active`; core 1's handler releases the iteration. With
// max_active = 1 core 1's activation is held until core 0's handler returns and frees the slot:
// the core that frees it wakes the waiting core (Limits::give_active). Without a limit both
// may run at once: the baseline.
void run_handoff(benchmark::State& state, std::uint32_t max_active) {
  aem::Config config;
  config.cores = 2;
  aem_bench::without_stall_reports(config);
  aem::Runtime rt(config);
  rt.run([&] {
    auto group = aem::EventGroup::create({.max_active = max_active});
    if (!group) return state.SkipWithError("EventGroup::create failed");
    aem::WaitGroup released;
    std::atomic<std::uint64_t> second{0};
    auto register_on = [&](unsigned core, auto handler) {
      auto maker = aem::spawn([&, handler] { return aem::on_event(handler); }, {.core = core, .group = *group});
      return maker ? maker->join() : aem::Result<aem::EventId>(maker.error());
    };
    auto on_core1 = register_on(1, [&] {
      second.fetch_add(1, std::memory_order_relaxed);
      released.done();
    });
    if (!on_core1) return state.SkipWithError("on_event on core 1 failed");
    const aem::EventId target = *on_core1;
    auto on_core0 = register_on(0, [target] { (void)aem::trigger(target); });
    if (!on_core0) return state.SkipWithError("on_event on core 0 failed");
    for (auto _ : state) {
      released.add(1);
      (void)aem::trigger(*on_core0);
      released.wait();
    }
    if (second.load() != static_cast<std::uint64_t>(state.iterations())) state.SkipWithError("a hand-over was lost");
    (void)group->cancel();
  });
}

// BM_MaxActiveHandoff: a max_active = 1 slot handed from a handler on core 0 to one on core 1.
void BM_MaxActiveHandoff(benchmark::State& state) { run_handoff(state, 1); }
BENCHMARK(BM_MaxActiveHandoff)->UseRealTime();

// BM_UnlimitedHandoff: the same chain in a group without limits.
void BM_UnlimitedHandoff(benchmark::State& state) { run_handoff(state, 0); }
BENCHMARK(BM_UnlimitedHandoff)->UseRealTime();

}  // namespace
