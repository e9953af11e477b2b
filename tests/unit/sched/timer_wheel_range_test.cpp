// The timing wheel over its whole range: cascading through every level, the full 64-bit tick
// range, far-future and time_point::max() deadlines, and long idle periods. Time is synthetic.
#include "support/timer_wheel_helpers.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

using namespace aem_test::timer_wheel;

namespace {

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

}  // namespace

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
