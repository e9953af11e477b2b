// Benchmarks of the per-core timing wheel's hot paths, on synthetic time (the clock is never
// read inside the timed loops).
#include "runtime/sched/timer_wheel.hpp"

#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <random>
#include <vector>

namespace {

using aem::detail::Clock;
using aem::detail::TimerNode;
using aem::detail::TimerWheel;
using std::chrono::nanoseconds;

constexpr std::size_t kBackground = 1'000'000;

// Background holds a wheel with ~1M nodes armed over the next hour (every level from 0 to
// 4 is populated), the load a busy core carries.
struct Background {
  Clock::time_point t0{std::chrono::hours(1)};
  std::vector<TimerNode> nodes{kBackground};  // declared first: outlives the wheel
  std::unique_ptr<TimerWheel> wheel = std::make_unique<TimerWheel>(std::chrono::microseconds(50), t0);

  explicit Background(std::uint64_t min_ns = 0) {
    std::mt19937_64 rng(42);
    for (TimerNode& n : nodes)
      wheel->arm(n, t0 + nanoseconds(static_cast<std::int64_t>(min_ns + rng() % 3'600'000'000'000ULL)));
  }
};

// Arm and cancel one node per iteration with a fixed timeout (the common "operation with a
// 5 s timeout that completes first" pattern); its slot is shared with background nodes.
void BM_WheelArmCancel(benchmark::State& state) {
  Background bg;
  TimerNode node;
  const auto deadline = bg.t0 + std::chrono::seconds(5);
  for (auto _ : state) {
    bg.wheel->arm(node, deadline);
    benchmark::DoNotOptimize(bg.wheel->cancel(node));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_WheelArmCancel);

// The same with a different deadline every iteration (1024 timeouts from 1 ms to 1 h), so
// arm and cancel touch a different slot, on any level, and its background neighbours.
void BM_WheelArmCancelSpread(benchmark::State& state) {
  Background bg;
  TimerNode node;
  std::vector<Clock::time_point> deadlines(1024);
  std::mt19937_64 rng(7);
  for (auto& d : deadlines)
    d = bg.t0 + nanoseconds(static_cast<std::int64_t>(1'000'000 + rng() % 3'600'000'000'000ULL));
  std::size_t i = 0;
  for (auto _ : state) {
    bg.wheel->arm(node, deadlines[i++ & 1023]);
    benchmark::DoNotOptimize(bg.wheel->cancel(node));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_WheelArmCancelSpread);

// Arm one node 1.5 ticks ahead, then advance past it: arm + an advance that reports one node.
// The 1M background nodes sit at least a day ahead, so they are never due.
void BM_WheelArmFire(benchmark::State& state) {
  Background bg(24 * 3'600'000'000'000ULL);
  TimerNode node;
  const nanoseconds tick = bg.wheel->resolution();
  auto now = bg.t0;
  std::size_t fired = 0;
  for (auto _ : state) {
    bg.wheel->arm(node, now + tick + tick / 2);
    now += tick * 2;
    fired += bg.wheel->advance(now, [](TimerNode& n) { benchmark::DoNotOptimize(&n); });
  }
  if (fired != static_cast<std::size_t>(state.iterations())) state.SkipWithError("a node was not reported");
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_WheelArmFire);

// One turn of an idle core loop: advance (nothing due) and ask how long to sleep.
void BM_WheelIdleTurn(benchmark::State& state) {
  Background bg(24 * 3'600'000'000'000ULL);
  auto now = bg.t0;
  for (auto _ : state) {
    now += nanoseconds(700);
    benchmark::DoNotOptimize(bg.wheel->advance(now, [](TimerNode&) {}));
    benchmark::DoNotOptimize(bg.wheel->next_wakeup());
  }
}
BENCHMARK(BM_WheelIdleTurn);

}  // namespace
