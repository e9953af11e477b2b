// Unit tests for the per-core timing wheel: its tick arithmetic, when and in which order armed
// nodes are reported, cancel and re-arm, next_wakeup, and clear(). Time is synthetic
// throughout: the wheel is only ever driven with time points computed from its origin, never
// with the real clock. Ranges and cascading are in timer_wheel_range_test.cpp, callbacks that
// arm, cancel or throw in timer_wheel_callback_test.cpp, the randomized model in
// timer_wheel_model_test.cpp.
#include "support/timer_wheel_helpers.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <vector>

using namespace aem_test::timer_wheel;

TEST_CASE("timer_wheel: TickDivider is exact") {
  std::mt19937_64 rng(12345);
  std::vector<std::uint64_t> divisors = {1, 2, 3, 5, 6, 7, 10, 1000, 50000, 65535, 65536, 65537,
                                         1000000007ULL, (1ULL << 32) - 1, (1ULL << 32) + 1,
                                         (1ULL << 63) - 1, 1ULL << 63, (1ULL << 63) + 1,
                                         ~0ULL - 1, ~0ULL};
  for (int i = 0; i < 200; ++i) divisors.push_back(rng() >> (rng() % 64) | 1);
  for (int i = 0; i < 64; ++i) divisors.push_back((1ULL << i) + (rng() & 1));
  for (const std::uint64_t d : divisors) {
    const TickDivider div(d);
    std::vector<std::uint64_t> numerators = {0, 1, d - 1, d, d + 1, 2 * d - 1, 2 * d,
                                             ~0ULL, ~0ULL - 1, ~0ULL / d * d, ~0ULL / d * d - 1};
    for (int i = 0; i < 2000; ++i) numerators.push_back(rng() >> (rng() % 64));
    for (const std::uint64_t n : numerators) {
      if (div.divide(n) != n / d) {
        FAIL_CHECK("divide(" << n << ") by " << d << " = " << div.divide(n));
        return;
      }
    }
  }
}

TEST_CASE("timer_wheel: node layout and empty wheel") {
  static_assert(sizeof(TimerNode) <= 48);
  TimerNode n;
  CHECK_FALSE(n.armed());
  TimerWheel w(std::chrono::microseconds(50), at_ns(0));
  CHECK(w.empty());
  CHECK(w.size() == 0);
  CHECK(w.next_wakeup() == kMax);
  Collector c;
  CHECK(w.advance(at_ns(1'000'000'000), c) == 0);
  CHECK(w.advance(kMax, c) == 0);
  CHECK(c.fired.empty());
  CHECK_FALSE(w.cancel(n));
  CHECK(w.resolution() == std::chrono::microseconds(50));
  CHECK(w.origin() == at_ns(0));
  TimerWheel zero(nanoseconds(0), at_ns(0));  // clamped to 1 ns
  CHECK(zero.resolution() == nanoseconds(1));
}

TEST_CASE("timer_wheel: fires exactly at the deadline, not at tick boundaries") {
  const TP t0 = at_ns(1'000'000);
  TimerWheel w(std::chrono::microseconds(50), t0);
  TimerNode a;
  const TP deadline = t0 + std::chrono::microseconds(175);  // inside tick 3
  w.arm(a, deadline);
  CHECK(a.armed());
  CHECK(w.size() == 1);
  CHECK(w.next_wakeup() <= deadline);
  CHECK(w.next_wakeup() == deadline);  // exact while nothing was cancelled
  Collector c;
  CHECK(w.advance(t0 + std::chrono::microseconds(150), c) == 0);  // start of its tick
  CHECK(w.advance(deadline - nanoseconds(1), c) == 0);
  CHECK(a.armed());
  CHECK(w.next_wakeup() == deadline);
  CHECK(w.advance(deadline, c) == 1);
  REQUIRE(c.fired.size() == 1);
  CHECK(c.fired[0] == &a);
  CHECK(c.all_unlinked);
  CHECK_FALSE(a.armed());
  CHECK(w.empty());
  CHECK(w.next_wakeup() == kMax);
  CHECK_FALSE(w.cancel(a));
}

TEST_CASE("timer_wheel: past deadlines and deadline == now fire at the next advance") {
  const TP t0 = at_ns(0);
  TimerWheel w(std::chrono::microseconds(50), t0);
  Collector c;
  const TP now = t0 + std::chrono::seconds(3);
  CHECK(w.advance(now, c) == 0);
  TimerNode past, way_past, min_node, same;
  w.arm(past, now - std::chrono::microseconds(120));
  w.arm(way_past, t0 - std::chrono::hours(1000));
  w.arm(min_node, kMin);
  w.arm(same, now);
  CHECK(w.size() == 4);
  CHECK(w.next_wakeup() <= kMin);
  CHECK(w.advance(now, c) == 4);  // the same `now` as before
  CHECK(c.fired == std::vector<TimerNode*>{&past, &way_past, &min_node, &same});
  CHECK(w.empty());
  // Even before the wheel ever advanced, and with an earlier `now` than the origin.
  TimerWheel w2(std::chrono::milliseconds(1), at_ns(1'000'000'000));
  TimerNode b;
  w2.arm(b, at_ns(5));
  Collector c2;
  CHECK(w2.advance(at_ns(4), c2) == 0);  // before b's deadline
  CHECK(w2.advance(at_ns(5), c2) == 1);
}

TEST_CASE("timer_wheel: an advance with an earlier now reports only what is due by then") {
  const TP t0 = at_ns(0);
  TimerWheel w(std::chrono::microseconds(50), t0);
  Collector c;
  CHECK(w.advance(t0 + std::chrono::milliseconds(5), c) == 0);
  TimerNode old, older, future;
  w.arm(old, t0 + std::chrono::milliseconds(3));    // in the past of the wheel
  w.arm(older, t0 + std::chrono::milliseconds(1));
  w.arm(future, t0 + std::chrono::milliseconds(6));
  CHECK(w.advance(t0 + std::chrono::microseconds(500), c) == 0);
  CHECK(w.advance(t0 + std::chrono::milliseconds(2), c) == 1);
  CHECK(c.fired == std::vector<TimerNode*>{&older});
  CHECK(w.next_wakeup() <= old.deadline);
  CHECK(w.advance(t0 + std::chrono::milliseconds(6), c) == 2);
  CHECK(c.fired == std::vector<TimerNode*>{&older, &old, &future});
}

TEST_CASE("timer_wheel: FIFO within a tick, tick order across ticks") {
  const TP t0 = at_ns(0);
  TimerWheel w(std::chrono::microseconds(50), t0);
  std::vector<TimerNode> nodes(12);
  // Six nodes in tick 10 with decreasing deadlines: reported in arming order.
  for (int i = 0; i < 6; ++i) w.arm(nodes[i], t0 + std::chrono::microseconds(549 - i * 7));
  // Six nodes in earlier and later ticks, armed afterwards.
  w.arm(nodes[6], t0 + std::chrono::microseconds(200));  // tick 4
  w.arm(nodes[7], t0 + std::chrono::hours(2));
  w.arm(nodes[8], t0 + std::chrono::microseconds(201));  // tick 4, after [6]
  w.arm(nodes[9], t0 + std::chrono::seconds(1));
  w.arm(nodes[10], t0 + std::chrono::microseconds(500));  // tick 10, after [0..5]
  w.arm(nodes[11], t0 + std::chrono::microseconds(551));  // tick 11
  Collector c;
  CHECK(w.advance(t0 + std::chrono::hours(3), c) == 12);
  const std::vector<TimerNode*> expected = {&nodes[6], &nodes[8], &nodes[0],  &nodes[1],
                                            &nodes[2], &nodes[3], &nodes[4],  &nodes[5],
                                            &nodes[10], &nodes[11], &nodes[9], &nodes[7]};
  CHECK(c.fired == expected);
}

TEST_CASE("timer_wheel: only the due part of the current tick is reported") {
  const TP t0 = at_ns(0);
  TimerWheel w(std::chrono::microseconds(50), t0);
  TimerNode a, b, d;
  w.arm(a, t0 + std::chrono::microseconds(130));
  w.arm(b, t0 + std::chrono::microseconds(110));
  w.arm(d, t0 + std::chrono::microseconds(120));
  Collector c;
  CHECK(w.advance(t0 + std::chrono::microseconds(115), c) == 1);
  CHECK(c.fired == std::vector<TimerNode*>{&b});
  CHECK(w.next_wakeup() == t0 + std::chrono::microseconds(120));
  CHECK(w.advance(t0 + std::chrono::microseconds(119), c) == 0);
  CHECK(w.advance(t0 + std::chrono::microseconds(130), c) == 2);
  CHECK(c.fired == std::vector<TimerNode*>{&b, &a, &d});  // same tick: arming order
}

TEST_CASE("timer_wheel: cancel, re-arm, and next_wakeup after cancels") {
  const TP t0 = at_ns(0);
  TimerWheel w(std::chrono::microseconds(50), t0);
  TimerNode a, b, lone;
  // a and b share a level-1 slot (ticks 64..127); lone has a slot of its own.
  w.arm(a, t0 + std::chrono::milliseconds(5));
  w.arm(b, t0 + std::chrono::milliseconds(6));
  w.arm(lone, t0 + std::chrono::milliseconds(2));
  CHECK(w.next_wakeup() == lone.deadline);
  CHECK(w.cancel(lone));  // its slot empties: the bound goes with it
  CHECK(w.next_wakeup() == a.deadline);
  CHECK(w.cancel(a));
  CHECK_FALSE(w.cancel(a));
  // The bound of the shared slot is now early, never late; an advance there reports nothing
  // and makes it exact.
  CHECK(w.next_wakeup() == a.deadline);
  Collector c;
  CHECK(w.advance(w.next_wakeup(), c) == 0);
  CHECK(w.next_wakeup() == b.deadline);
  w.arm(a, t0 + std::chrono::milliseconds(1));
  CHECK(w.next_wakeup() <= a.deadline);
  CHECK(w.advance(t0 + std::chrono::milliseconds(20), c) == 2);
  CHECK(c.fired == std::vector<TimerNode*>{&a, &b});
}

TEST_CASE("timer_wheel: next_wakeup converges on the deadline in a few wake-ups") {
  // A sleeping core loop: sleep until next_wakeup(), advance, repeat. Each timer must be
  // reported at its deadline, with a bounded number of empty wake-ups.
  std::mt19937_64 rng(99);
  const TP t0 = at_ns(0);
  TimerWheel w(std::chrono::microseconds(50), t0);
  std::vector<TimerNode> n(300);
  for (TimerNode& x : n) w.arm(x, t0 + nanoseconds(static_cast<std::int64_t>(rng() % 3'600'000'000'000ULL)));
  std::size_t wakeups = 0;
  std::size_t fired = 0;
  TP now = t0;
  while (!w.empty()) {
    const TP wake = w.next_wakeup();
    REQUIRE(wake >= now);
    now = wake;
    ++wakeups;
    fired += w.advance(now, [&](TimerNode& x) { CHECK(x.deadline == now); });
  }
  CHECK(fired == n.size());
  CHECK(wakeups <= n.size());  // exact lower bounds: no empty wake-ups without cancels
}

TEST_CASE("timer_wheel: clear() disarms everything: the destructor touches no node") {
  std::vector<TimerNode> n(3);
  TimerWheel w(std::chrono::microseconds(50), at_ns(0));
  w.arm(n[0], at_ns(10));
  w.arm(n[1], at_ns(1'000'000'000'000));
  w.arm(n[2], kMax);
  w.clear();
  for (const TimerNode& x : n) CHECK_FALSE(x.armed());
  CHECK(w.empty());
  CHECK(w.next_wakeup() == kMax);
  Collector c;
  CHECK(w.advance(kMax, c) == 0);
  // Reusable afterwards.
  w.arm(n[0], at_ns(10));
  CHECK(w.next_wakeup() == at_ns(10));
  {
    // Nodes that die before their wheel (declared after it) are not touched by ~TimerWheel.
    TimerWheel inner(std::chrono::microseconds(50), at_ns(0));
    std::vector<TimerNode> dying(4);
    for (TimerNode& x : dying) inner.arm(x, at_ns(1000));
  }
}
