// Stress tests for the per-core timing wheel: a million armed nodes, driven with synthetic
// time (never the real clock), checking that every node is reported exactly once, in the
// first advance() whose `now` reaches its deadline, and cancelled nodes never.
#include "runtime/sched/timer_wheel.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace {

using aem::detail::Clock;
using aem::detail::TimerNode;
using aem::detail::TimerWheel;
using std::chrono::nanoseconds;
using TP = Clock::time_point;

constexpr std::size_t kMillion = 1'000'000;

// Harness drives a wheel over a set of nodes and checks every report against the expected
// state: reported once, not before its deadline, not after the first advance that reached it.
struct Harness {
  TimerWheel wheel;
  std::vector<TimerNode> nodes;
  std::vector<std::uint32_t> reports;
  std::vector<char> expect_armed;
  std::vector<std::uint64_t> armed_epoch;  // `advances` when armed
  std::uint64_t advances = 0;
  std::size_t armed_count = 0;
  TP now;
  TP previous_now;
  std::size_t failures = 0;
  std::size_t reported_total = 0;

  Harness(nanoseconds tick, TP origin, std::size_t n)
      : wheel(tick, origin), nodes(n), reports(n), expect_armed(n), armed_epoch(n), now(origin), previous_now(origin) {}

  void fail(const char* what, std::size_t i) {
    if (failures++ < 10) FAIL_CHECK(what << " (node " << i << ")");
  }

  void arm(std::size_t i, TP deadline) {
    wheel.arm(nodes[i], deadline);
    expect_armed[i] = 1;
    armed_epoch[i] = advances;
    ++armed_count;
  }

  bool cancel(std::size_t i) {
    const bool was = wheel.cancel(nodes[i]);
    if (was != (expect_armed[i] != 0)) fail("cancel() result", i);
    if (was) --armed_count;
    expect_armed[i] = 0;
    return was;
  }

  // advance_to moves to `to` and checks the reports; `extra` runs after the checks for each
  // reported node and may re-arm it.
  template <typename Extra>
  std::size_t advance_to(TP to, Extra&& extra) {
    previous_now = now;
    now = to;
    ++advances;
    std::uint64_t last_tick = 0;
    const std::size_t n = wheel.advance(now, [&](TimerNode& node) {
      const auto i = static_cast<std::size_t>(&node - nodes.data());
      if (!expect_armed[i]) fail("reported although cancelled or already reported", i);
      if (node.armed()) fail("still armed in its callback", i);
      if (node.deadline > now) fail("reported early", i);
      // Armed before the previous advance and due by then: that advance should have had it.
      if (node.deadline <= previous_now && armed_epoch[i] + 2 <= advances)
        fail("reported late (a previous advance reached it)", i);
      if (node.tick < last_tick) fail("reported out of tick order", i);
      last_tick = node.tick;
      expect_armed[i] = 0;
      --armed_count;
      ++reports[i];
      ++reported_total;
      extra(i);
    });
    if (wheel.size() != armed_count) fail("size()", armed_count);
    return n;
  }

  std::size_t advance_to(TP to) {
    return advance_to(to, [](std::size_t) {});
  }
};

TP offset(TP base, std::uint64_t ns) {
  const std::int64_t b = base.time_since_epoch().count();
  const std::uint64_t room =
      static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) - static_cast<std::uint64_t>(b);
  if (ns > room) return TP::max();
  return TP(nanoseconds(static_cast<std::int64_t>(static_cast<std::uint64_t>(b) + ns)));
}

}  // namespace

TEST_CASE("timer_wheel stress: 1,000,000 armed timers all fire exactly once") {
  std::mt19937_64 rng(2024);
  const TP t0 = TP(std::chrono::hours(1));
  Harness h(std::chrono::microseconds(50), t0, kMillion);
  for (std::size_t i = 0; i < kMillion; ++i) {
    const std::uint64_t r = rng() % 100;
    std::uint64_t ns;
    if (r < 70) {
      ns = rng() % 600'000'000'000ULL;  // the next ten minutes
    } else if (r < 99) {
      ns = rng() >> (rng() % 63 + 1);  // every level, up to ~292 years
    } else {
      ns = ~0ULL;  // time_point::max()
    }
    h.arm(i, offset(t0, ns));
  }
  CHECK(h.wheel.size() == kMillion);
  // Mostly small steps through the dense ten minutes, then ever larger jumps to the end.
  TP now = t0;
  while (now < t0 + std::chrono::minutes(10)) {
    now += nanoseconds(static_cast<std::int64_t>(rng() % 2'000'000));
    h.advance_to(now);
  }
  std::uint64_t step = 1'000'000'000;
  while (now != TP::max()) {
    now = offset(now, step + rng() % step);
    h.advance_to(now);
    if (step < (1ULL << 61)) step *= 3;
  }
  CHECK(h.failures == 0);
  CHECK(h.wheel.empty());
  CHECK(h.reported_total == kMillion);
  CHECK(std::all_of(h.reports.begin(), h.reports.end(), [](std::uint32_t c) { return c == 1; }));
  CHECK(h.wheel.next_wakeup() == TP::max());
}

TEST_CASE("timer_wheel stress: 1,000,000 armed, half cancelled, the rest fire once") {
  std::mt19937_64 rng(77);
  const TP t0 = TP(std::chrono::seconds(5));
  Harness h(std::chrono::microseconds(50), t0, kMillion);
  for (std::size_t i = 0; i < kMillion; ++i)
    h.arm(i, offset(t0, rng() % 3'600'000'000'000ULL));  // one hour
  std::vector<char> cancelled(kMillion);
  std::size_t cancels = 0;
  for (std::size_t i = 0; i < kMillion; ++i) {
    if (rng() & 1) {
      cancelled[i] = 1;
      cancels += h.cancel(i) ? 1 : 0;
    }
  }
  CHECK(h.wheel.size() == kMillion - cancels);
  // Interleave: advance in 100 ms steps and cancel random further nodes as time goes by.
  TP now = t0;
  while (!h.wheel.empty()) {
    now += std::chrono::milliseconds(100);
    for (int k = 0; k < 20; ++k) {
      const std::size_t i = rng() % kMillion;
      if (h.expect_armed[i]) {
        cancelled[i] = 1;
        ++cancels;
        h.cancel(i);
      }
    }
    h.advance_to(now);
    CHECK_FALSE(h.wheel.next_wakeup() < now);  // nothing due is left behind
  }
  CHECK(h.failures == 0);
  std::size_t bad = 0;
  for (std::size_t i = 0; i < kMillion; ++i)
    bad += (h.reports[i] != (cancelled[i] ? 0u : 1u)) ? 1 : 0;
  CHECK(bad == 0);
  CHECK(h.reported_total == kMillion - cancels);
}

TEST_CASE("timer_wheel stress: a sleeping core loop with periodic timers") {
  // The loop sleeps exactly until next_wakeup(); each wake-up must report something unless a
  // cancel made the bound early, and every report must land exactly on its deadline.
  std::mt19937_64 rng(5);
  const TP t0 = TP(std::chrono::hours(2));
  constexpr std::size_t kNodes = 200'000;
  Harness h(std::chrono::microseconds(50), t0, kNodes);
  std::vector<std::int64_t> period(kNodes);
  std::vector<int> remaining(kNodes);
  for (std::size_t i = 0; i < kNodes; ++i) {
    period[i] = static_cast<std::int64_t>(1 + rng() % 30'000'000'000ULL);  // up to 30 s
    remaining[i] = 1 + static_cast<int>(rng() % 8);
    h.arm(i, t0 + nanoseconds(period[i]));
  }
  std::size_t wakeups = 0;
  std::size_t empty_wakeups = 0;
  std::size_t exact = 0;
  while (!h.wheel.empty()) {
    const TP wake = h.wheel.next_wakeup();
    REQUIRE(wake >= h.now);
    ++wakeups;
    const std::size_t n = h.advance_to(wake, [&](std::size_t i) {
      if (h.nodes[i].deadline == wake) ++exact;
      if (--remaining[i] > 0) h.arm(i, h.nodes[i].deadline + nanoseconds(period[i]));
    });
    if (n == 0) ++empty_wakeups;
  }
  CHECK(h.failures == 0);
  CHECK(exact == h.reported_total);  // never late: the loop woke exactly on each deadline
  CHECK(empty_wakeups == 0);         // no cancels, so the bounds were exact
  MESSAGE(h.reported_total << " reports in " << wakeups << " wake-ups");
}

TEST_CASE("timer_wheel stress: arm/cancel churn over a million armed nodes") {
  std::mt19937_64 rng(31337);
  const TP t0 = TP(std::chrono::hours(3));
  Harness h(std::chrono::microseconds(50), t0, kMillion);
  for (std::size_t i = 0; i < kMillion; ++i) h.arm(i, offset(t0, rng() >> (rng() % 30 + 24)));
  TP now = t0;
  for (int round = 0; round < 2000; ++round) {
    for (int k = 0; k < 1000; ++k) {
      const std::size_t i = rng() % kMillion;
      if (h.expect_armed[i]) {
        h.cancel(i);
      } else {
        h.arm(i, offset(now, rng() >> (rng() % 40 + 20)));
      }
    }
    now += nanoseconds(static_cast<std::int64_t>(rng() % 50'000'000));
    h.advance_to(now, [&](std::size_t i) {
      if (rng() % 4 == 0) h.arm(i, offset(now, rng() % 1'000'000'000));
    });
  }
  h.advance_to(TP::max());
  CHECK(h.failures == 0);
  CHECK(h.wheel.empty());
}
