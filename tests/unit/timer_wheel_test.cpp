// Unit tests for the per-core timing wheel. Time is synthetic throughout: the wheel is only
// ever driven with time points computed from its origin, never with the real clock.
#include "io/timer_wheel.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <stdexcept>
#include <vector>

namespace {

using aem::detail::Clock;
using aem::detail::TickDivider;
using aem::detail::TimerNode;
using aem::detail::TimerWheel;
using std::chrono::nanoseconds;
using TP = Clock::time_point;

constexpr TP kMax = TP::max();
constexpr TP kMin = TP::min();

TP at_ns(std::int64_t ns) { return TP(nanoseconds(ns)); }

// Collector records what advance() reports and checks the per-report invariants.
struct Collector {
  std::vector<TimerNode*> fired;
  bool all_unlinked = true;
  void operator()(TimerNode& n) {
    if (n.armed()) all_unlinked = false;
    fired.push_back(&n);
  }
};

}  // namespace

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

// Drives a wheel in arbitrary steps and checks after every advance that exactly the due
// nodes were reported, each once, and that next_wakeup() never overshoots.
struct Checked {
  TimerWheel& wheel;
  std::vector<TimerNode>& nodes;
  std::vector<int> fire_count;

  Checked(TimerWheel& w, std::vector<TimerNode>& n) : wheel(w), nodes(n), fire_count(n.size()) {}

  TP earliest() const {
    TP e = kMax;
    for (const TimerNode& n : nodes)
      if (n.armed()) e = std::min(e, n.deadline);
    return e;
  }

  void advance_to(TP now) {
    std::vector<bool> due(nodes.size());
    for (std::size_t i = 0; i < nodes.size(); ++i) due[i] = nodes[i].armed() && nodes[i].deadline <= now;
    const std::size_t reported = wheel.advance(now, [&](TimerNode& n) {
      const auto i = static_cast<std::size_t>(&n - nodes.data());
      CHECK_FALSE(n.armed());
      CHECK(n.deadline <= now);
      ++fire_count[i];
    });
    std::size_t expected = 0;
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      if (due[i]) {
        ++expected;
        CHECK_MESSAGE(!nodes[i].armed(), "node " << i << " due but still armed");
      } else {
        CHECK_MESSAGE(!(nodes[i].armed() && nodes[i].deadline <= now), "node " << i);
      }
    }
    CHECK(reported == expected);
    CHECK(wheel.next_wakeup() <= earliest());
    if (earliest() == kMax && std::none_of(nodes.begin(), nodes.end(), [](const TimerNode& n) {
          return n.armed();
        }))
      CHECK(wheel.next_wakeup() == kMax);
  }
};

TEST_CASE("timer_wheel: cascading across every level, 1 ns ticks") {
  const TP t0 = at_ns(0);
  TimerWheel w(nanoseconds(1), t0);
  std::vector<std::int64_t> offsets;
  for (int k = 1; k <= 10; ++k) {
    const std::int64_t p = std::int64_t{1} << (6 * k);
    for (const std::int64_t m : {1, 3, 63}) {
      if (p > std::numeric_limits<std::int64_t>::max() / 64) break;
      for (const std::int64_t o : {m * p - 1, m * p, m * p + 1, m * p + 5}) offsets.push_back(o);
    }
  }
  offsets.push_back(std::int64_t{1} << 62);
  offsets.push_back((std::int64_t{1} << 62) + 12345);
  offsets.push_back(std::numeric_limits<std::int64_t>::max() - 1);
  offsets.push_back(std::numeric_limits<std::int64_t>::max());  // == time_point::max()
  std::sort(offsets.begin(), offsets.end());
  offsets.erase(std::unique(offsets.begin(), offsets.end()), offsets.end());
  std::vector<TimerNode> nodes(offsets.size());
  for (std::size_t i = 0; i < nodes.size(); ++i) w.arm(nodes[i], t0 + nanoseconds(offsets[i]));
  CHECK(nodes.back().deadline == kMax);
  Checked chk(w, nodes);
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    const TP d = nodes[i].deadline;
    chk.advance_to(d - nanoseconds(1));
    CHECK(nodes[i].armed());
    chk.advance_to(d);
    CHECK_FALSE(nodes[i].armed());
    CHECK(chk.fire_count[i] == 1);
  }
  CHECK(w.empty());
  CHECK(w.next_wakeup() == kMax);
}

TEST_CASE("timer_wheel: the full 64-bit tick range, origin at time_point::min()") {
  TimerWheel w(nanoseconds(1), kMin);
  std::vector<TimerNode> nodes(40);
  std::mt19937_64 rng(7);
  // Ticks up to 2^64 - 1 (saturated to 2^64 - 2 internally): levels 0..10, all top slots.
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    const std::uint64_t off = i == 0 ? ~0ULL : (i < 16 ? (std::uint64_t{i} << 60) + i : rng());
    const auto ns = static_cast<std::int64_t>(static_cast<std::uint64_t>(kMin.time_since_epoch().count()) + off);
    w.arm(nodes[i], TP(nanoseconds(ns)));
  }
  CHECK(nodes[0].deadline == kMax);
  Checked chk(w, nodes);
  std::vector<TP> points;
  for (const TimerNode& n : nodes) {
    points.push_back(n.deadline);
    if (n.deadline != kMin) points.push_back(n.deadline - nanoseconds(1));
  }
  std::sort(points.begin(), points.end());
  for (const TP p : points) chk.advance_to(p);
  CHECK(w.empty());
  for (const int c : chk.fire_count) CHECK(c == 1);
}

TEST_CASE("timer_wheel: far future and time_point::max() deadlines with a coarse tick") {
  const TP t0 = at_ns(0);
  TimerWheel w(std::chrono::microseconds(50), t0);
  TimerNode far, max_node, near;
  w.arm(max_node, kMax);
  w.arm(far, t0 + std::chrono::hours(24 * 365 * 100));
  w.arm(near, t0 + std::chrono::milliseconds(1));
  Collector c;
  CHECK(w.advance(t0 + std::chrono::hours(24 * 365 * 100) - nanoseconds(1), c) == 1);
  CHECK(c.fired == std::vector<TimerNode*>{&near});
  CHECK(w.next_wakeup() <= far.deadline);
  CHECK(w.advance(t0 + std::chrono::hours(24 * 365 * 100), c) == 1);
  CHECK(w.advance(kMax - nanoseconds(1), c) == 0);
  CHECK(max_node.armed());
  CHECK(w.next_wakeup() <= kMax);
  CHECK(w.advance(kMax, c) == 1);
  CHECK(c.fired.back() == &max_node);
  CHECK(w.empty());
  // The wheel keeps working at the very end of time.
  TimerNode again;
  w.arm(again, kMax);
  CHECK(w.advance(kMax, c) == 1);
}

TEST_CASE("timer_wheel: long idle periods are skipped, not walked") {
  // With 1 ns ticks a tick-by-tick walk over 2^62 ticks would never finish.
  const TP t0 = at_ns(0);
  TimerWheel w(nanoseconds(1), t0);
  TimerNode a, b;
  w.arm(a, t0 + nanoseconds(std::int64_t{1} << 62));
  w.arm(b, t0 + nanoseconds((std::int64_t{1} << 62) + (std::int64_t{1} << 40)));
  Collector c;
  CHECK(w.advance(t0 + nanoseconds(std::int64_t{1} << 61), c) == 0);
  CHECK(w.advance(t0 + nanoseconds(std::int64_t{1} << 62), c) == 1);
  CHECK(w.advance(kMax - nanoseconds(1), c) == 1);
  CHECK(c.fired == std::vector<TimerNode*>{&a, &b});
}

TEST_CASE("timer_wheel: re-arming inside the callback (periodic timers)") {
  const TP t0 = at_ns(0);
  const auto period = std::chrono::microseconds(120);
  TimerWheel w(std::chrono::microseconds(50), t0);
  TimerNode p;
  w.arm(p, t0 + period);
  int fires = 0;
  auto rearm = [&](TimerNode& n) {
    ++fires;
    w.arm(n, n.deadline + period);
  };
  // Exact steps: one report per period.
  for (int i = 1; i <= 100; ++i) {
    CHECK(w.advance(t0 + period * i - nanoseconds(1), rearm) == 0);
    CHECK(w.advance(t0 + period * i, rearm) == 1);
    CHECK(fires == i);
    CHECK(p.armed());
    CHECK(p.deadline == t0 + period * (i + 1));
    CHECK(w.next_wakeup() <= p.deadline);
  }
  // A late advance that spans many periods reports the node once; the re-armed deadline is
  // already due and is reported by the next advance (no livelock within one advance).
  fires = 0;
  CHECK(w.advance(t0 + period * 1000, rearm) == 1);
  CHECK(p.armed());
  CHECK(p.deadline <= t0 + period * 1000);
  CHECK(w.next_wakeup() <= p.deadline);
  CHECK(w.advance(t0 + period * 1000, rearm) == 1);
  // Re-arming at exactly `now` or in the past: still one report per advance.
  const TP now = t0 + period * 2000;
  std::size_t total = 0;
  auto rearm_past = [&](TimerNode& n) { w.arm(n, now - std::chrono::hours(1)); };
  for (int i = 0; i < 5; ++i) total += w.advance(now, rearm_past);
  CHECK(total == 5);
  CHECK(w.cancel(p));
  CHECK(w.empty());
}

TEST_CASE("timer_wheel: next_wakeup inside a callback counts nodes the callback armed") {
  const TP t0 = at_ns(0);
  TimerWheel w(std::chrono::microseconds(50), t0);
  TimerNode a, b, later;
  w.arm(a, t0 + std::chrono::microseconds(70));
  w.arm(later, t0 + std::chrono::seconds(10));
  TP seen = kMax;
  CHECK(w.advance(t0 + std::chrono::milliseconds(1), [&](TimerNode&) {
    w.arm(b, t0 + std::chrono::microseconds(900));  // due, but left for the next advance
    seen = w.next_wakeup();
  }) == 1);
  CHECK(seen <= b.deadline);
  CHECK(w.next_wakeup() <= b.deadline);
  Collector c;
  CHECK(w.advance(t0 + std::chrono::milliseconds(1), c) == 1);
  CHECK(c.fired == std::vector<TimerNode*>{&b});
  CHECK(w.next_wakeup() == later.deadline);
}

TEST_CASE("timer_wheel: a callback cancels other due nodes") {
  const TP t0 = at_ns(0);
  TimerWheel w(std::chrono::microseconds(50), t0);
  std::vector<TimerNode> n(6);
  w.arm(n[0], t0 + std::chrono::microseconds(100));  // same tick as n[1]
  w.arm(n[1], t0 + std::chrono::microseconds(101));
  w.arm(n[2], t0 + std::chrono::microseconds(120));  // a later node of the same tick
  w.arm(n[3], t0 + std::chrono::seconds(40));        // due in this advance, still on a high level
  w.arm(n[4], t0 + std::chrono::seconds(41));
  w.arm(n[5], t0 + std::chrono::seconds(100));  // not due
  std::vector<TimerNode*> fired;
  bool cancel_results_ok = true;
  const std::size_t count = w.advance(t0 + std::chrono::seconds(50), [&](TimerNode& x) {
    fired.push_back(&x);
    if (&x == &n[0]) {
      cancel_results_ok &= w.cancel(n[1]);
      cancel_results_ok &= w.cancel(n[3]);
      cancel_results_ok &= !w.cancel(n[0]);  // itself: already unlinked
    }
    if (&x == &n[2]) cancel_results_ok &= w.cancel(n[5]);  // not due, just cancelled
  });
  CHECK(cancel_results_ok);
  CHECK(count == 3);
  CHECK(fired == std::vector<TimerNode*>{&n[0], &n[2], &n[4]});
  for (const TimerNode& x : n) CHECK_FALSE(x.armed());
  CHECK(w.empty());
  CHECK(w.next_wakeup() == kMax);
}

TEST_CASE("timer_wheel: a callback cancels every other node of its own slot") {
  const TP t0 = at_ns(0);
  TimerWheel w(std::chrono::microseconds(50), t0);
  std::vector<TimerNode> n(4);
  for (TimerNode& x : n) w.arm(x, t0 + std::chrono::microseconds(60));
  std::size_t calls = 0;
  w.advance(t0 + std::chrono::seconds(1), [&](TimerNode&) {
    ++calls;
    for (TimerNode& x : n) w.cancel(x);
  });
  CHECK(calls == 1);
  CHECK(w.empty());
  // The wheel is still usable afterwards.
  w.arm(n[0], t0 + std::chrono::seconds(2));
  Collector c;
  CHECK(w.advance(t0 + std::chrono::seconds(2), c) == 1);
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

TEST_CASE("timer_wheel: a throwing callback leaves the wheel consistent") {
  const TP t0 = at_ns(0);
  TimerWheel w(std::chrono::microseconds(50), t0);
  std::vector<TimerNode> n(5);
  for (TimerNode& x : n) w.arm(x, t0 + std::chrono::microseconds(10));
  TimerNode rearmed;
  int calls = 0;
  CHECK_THROWS_AS(w.advance(t0 + std::chrono::seconds(1),
                            [&](TimerNode&) {
                              if (++calls == 2) {
                                w.arm(rearmed, t0);
                                throw std::runtime_error("boom");
                              }
                            }),
                  std::runtime_error);
  CHECK(w.size() == 4);  // three unreported + the one armed before the throw
  Collector c;
  CHECK(w.advance(t0 + std::chrono::seconds(1), c) == 4);
  CHECK(c.fired == std::vector<TimerNode*>{&n[2], &n[3], &n[4], &rearmed});
  CHECK(w.empty());
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

// The randomized model: a reference multimap of (deadline -> node) against which every
// report of the wheel is checked.
namespace {

struct ModelRun {
  using Map = std::multimap<TP, std::size_t>;
  std::mt19937_64 rng;
  nanoseconds tick;
  TP origin;
  std::optional<TimerWheel> wheel;
  std::vector<TimerNode> nodes;
  Map model;                             // armed nodes by deadline
  std::vector<Map::iterator> where;
  std::vector<char> armed;               // node is in `model`
  std::vector<std::uint64_t> seq;        // arming sequence number
  std::vector<std::uint64_t> armed_in;   // advance count when armed
  std::vector<std::uint64_t> arm_tick;   // tick_of(now) when armed
  std::uint64_t next_seq = 0;
  std::uint64_t advances = 0;
  TP now;
  bool quiet_callbacks = false;
  std::size_t fired_total = 0;
  std::size_t failures = 0;

  ModelRun(std::uint64_t seed, nanoseconds t, TP o, std::size_t n)
      : rng(seed), tick(t), origin(o), nodes(n), where(n), armed(n), seq(n), armed_in(n),
        arm_tick(n), now(o) {
    wheel.emplace(tick, origin);
  }

  void fail(const char* what, std::size_t i) {
    if (failures++ < 10) FAIL_CHECK(what << " (node " << i << ", advance " << advances << ")");
  }

  // random_deadline draws a deadline covering the past, now, the near ticks and every level
  // up to time_point::max().
  TP random_deadline() {
    const std::uint64_t r = rng() % 100;
    const auto t = static_cast<std::uint64_t>(tick.count());
    std::int64_t off;
    if (r < 5) {
      off = -static_cast<std::int64_t>(rng() % (t * 100));
    } else if (r < 8) {
      off = 0;
    } else if (r < 50) {
      off = static_cast<std::int64_t>(rng() % (t * 130));
    } else if (r < 97) {
      const unsigned bits = static_cast<unsigned>(rng() % 63);
      off = static_cast<std::int64_t>(rng() >> (64 - bits - 1) >> 1);
    } else {
      return kMax - nanoseconds(static_cast<std::int64_t>(rng() % 3));
    }
    const std::int64_t base = now.time_since_epoch().count();
    if (off > 0 && base > std::numeric_limits<std::int64_t>::max() - off) return kMax;
    return TP(nanoseconds(base + off));
  }

  void arm(std::size_t i, TP deadline) {
    wheel->arm(nodes[i], deadline);
    where[i] = model.emplace(deadline, i);
    armed[i] = 1;
    seq[i] = next_seq++;
    armed_in[i] = advances;
    arm_tick[i] = wheel->tick_of(now);
  }

  void forget(std::size_t i) {
    model.erase(where[i]);
    armed[i] = 0;
  }

  void random_cancel() {
    const std::size_t i = rng() % nodes.size();
    const bool was = armed[i] != 0;
    if (wheel->cancel(nodes[i]) != was) fail("cancel() result disagrees with the model", i);
    if (was) forget(i);
  }

  void random_arm() {
    const std::size_t i = rng() % nodes.size();
    if (!armed[i]) arm(i, random_deadline());
  }

  void random_advance() {
    const std::uint64_t r = rng() % 100;
    const auto t = static_cast<std::uint64_t>(tick.count());
    std::uint64_t step;
    if (r < 15) {
      step = 0;
    } else if (r < 60) {
      step = rng() % (t * 3);
    } else if (r < 98) {
      const unsigned bits = static_cast<unsigned>(rng() % 40);
      step = (rng() >> (64 - bits - 1) >> 1) * (1 + t / 64);
    } else {
      step = rng() >> (rng() % 64);  // huge jumps, possibly to the end of time
    }
    const std::int64_t base = now.time_since_epoch().count();
    const std::uint64_t room =
        static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) - static_cast<std::uint64_t>(base);
    if (step > room)
      now = kMax;
    else
      now = TP(nanoseconds(static_cast<std::int64_t>(static_cast<std::uint64_t>(base) + step)));
    advance();
  }

  void advance() {
    ++advances;
    std::uint64_t last_tick = 0;
    std::uint64_t last_seq = 0;
    bool first = true;
    std::size_t reported_here = 0;
    const std::size_t reported = wheel->advance(now, [&](TimerNode& n) {
      const auto i = static_cast<std::size_t>(&n - nodes.data());
      ++reported_here;
      if (n.armed()) fail("reported while still armed", i);
      if (!armed[i]) return fail("reported but not armed (cancelled or duplicate)", i);
      if (n.deadline > now) fail("reported before its deadline", i);
      if (armed_in[i] == advances) fail("armed by a callback and reported in the same advance", i);
      // Order: by tick, FIFO within a tick; the tick is the deadline's, raised only for
      // deadlines already in the past when armed.
      if (!first && (n.tick < last_tick || (n.tick == last_tick && seq[i] < last_seq)))
        fail("reported out of order", i);
      const std::uint64_t own = wheel->tick_of(n.deadline);
      if (n.tick < own || n.tick > std::max(own, arm_tick[i])) fail("unexpected tick", i);
      first = false;
      last_tick = n.tick;
      last_seq = seq[i];
      forget(i);
      ++fired_total;
      if (quiet_callbacks) return;
      // Callbacks exercise re-arming and cancelling.
      const std::uint64_t r = rng() % 100;
      if (r < 10) {
        arm(i, r < 3 ? now : random_deadline());  // re-arm itself, maybe already due
      } else if (r < 20) {
        random_cancel();  // may cancel a node due later in this same advance
      } else if (r < 25) {
        random_arm();
      }
    });
    if (reported != reported_here) fail("advance() return value", reported);
    // Unless a callback armed a due node, the core loop may sleep past `now` right away.
    if ((model.empty() || model.begin()->first > now) && wheel->next_wakeup() <= now && now != kMax)
      fail("next_wakeup() <= now after advance(now) with nothing due", 0);
    // Every node armed before this advance with deadline <= now must have been reported.
    for (auto it = model.begin(); it != model.end() && it->first <= now; ++it)
      if (armed_in[it->second] != advances) fail("due node not reported", it->second);
    check_summary();
  }

  void check_summary() {
    if (wheel->size() != model.size()) fail("size() disagrees with the model", model.size());
    if (model.empty()) {
      if (wheel->next_wakeup() != kMax) fail("next_wakeup() of an empty wheel is not max()", 0);
    } else if (wheel->next_wakeup() > model.begin()->first) {
      fail("next_wakeup() later than the earliest deadline", model.begin()->second);
    }
  }

  // drain advances to the end of time with callbacks that arm nothing.
  void drain() {
    quiet_callbacks = true;
    now = kMax;
    advance();
    advance();  // nodes re-armed by the previous pass
    quiet_callbacks = false;
    if (!model.empty()) fail("nodes left after advance(max)", model.begin()->second);
  }

  void run(std::size_t ops) {
    for (std::size_t k = 0; k < ops && failures == 0; ++k) {
      const std::uint64_t r = rng() % 100;
      if (r < 45)
        random_arm();
      else if (r < 65)
        random_cancel();
      else
        random_advance();
      if (now == kMax) {  // the end of time: drain, then start over with a fresh wheel
        drain();
        now = origin;
        wheel.emplace(tick, origin);
      }
    }
  }
};

void run_model(std::uint64_t seed, nanoseconds tick, TP origin, std::size_t nodes, std::size_t ops) {
  ModelRun m(seed, tick, origin, nodes);
  m.run(ops);
  m.drain();
  CHECK(m.failures == 0);
  CHECK(m.model.empty());
  CHECK(m.wheel->empty());
  MESSAGE("seed " << seed << ": " << m.fired_total << " reports over " << m.advances << " advances");
}

}  // namespace

TEST_CASE("timer_wheel: randomized model, 50 us ticks") {
  run_model(1, std::chrono::microseconds(50), at_ns(1'000'000'000), 2048, 400'000);
}

TEST_CASE("timer_wheel: randomized model, 1 ns ticks") {
  run_model(2, nanoseconds(1), at_ns(0), 512, 300'000);
}

TEST_CASE("timer_wheel: randomized model, odd tick and negative origin") {
  run_model(3, nanoseconds(7777), at_ns(-5'000'000'000'000), 4096, 300'000);
}

TEST_CASE("timer_wheel: randomized model, few nodes (sparse slots)") {
  run_model(4, std::chrono::microseconds(50), at_ns(0), 16, 300'000);
}
