// The timing wheel's report callbacks: re-arming (periodic timers), next_wakeup from inside a
// callback, cancelling other nodes, and throwing. Time is synthetic.
#include "support/timer_wheel_helpers.hpp"

#include <doctest/doctest.h>

#include <cstddef>
#include <stdexcept>
#include <vector>

using namespace aem_test::timer_wheel;

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
