// Unit tests for TimerWheel::arm_after, which timers (aem::after, aem::every) arm through: the
// delay counts from the wheel's next reading of the time, so a node is never reported before
// `delay` has passed since the call; cancel before that reading; order; saturation. Wheel time
// is synthetic except where next_wakeup() reads the clock itself.
#include "support/timer_wheel_helpers.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <vector>

using namespace aem_test::timer_wheel;
using namespace std::chrono_literals;

TEST_CASE("timer_wheel: arm_after counts the delay from the next advance") {
  TimerWheel wheel(nanoseconds(50'000), at_ns(0));
  TimerNode node;
  wheel.arm_after(node, 100us);
  CHECK(node.armed());
  CHECK(wheel.size() == 1);
  Collector c;
  // The first reading fixes the deadline at 1 ms + 100 us: nothing is due yet.
  CHECK(wheel.advance(at_ns(1'000'000), c) == 0);
  CHECK(node.deadline == at_ns(1'100'000));
  CHECK(wheel.next_wakeup() == at_ns(1'100'000));
  CHECK(wheel.advance(at_ns(1'099'999), c) == 0);
  CHECK(wheel.advance(at_ns(1'100'000), c) == 1);
  REQUIRE(c.fired.size() == 1);
  CHECK(c.fired[0] == &node);
  CHECK(c.all_unlinked);
  CHECK(wheel.empty());
}

TEST_CASE("timer_wheel: arm_after nodes cancelled before the next reading are never reported") {
  TimerWheel wheel(nanoseconds(50'000), at_ns(0));
  TimerNode a;
  TimerNode b;
  wheel.arm_after(a, 0ns);
  wheel.arm_after(b, 1ms);
  CHECK(wheel.cancel(a));
  CHECK(!a.armed());
  CHECK(!wheel.cancel(a));
  CHECK(wheel.size() == 1);
  CHECK(wheel.cancel(b));
  CHECK(wheel.empty());
  Collector c;
  CHECK(wheel.advance(at_ns(10'000'000), c) == 0);
  CHECK(wheel.next_wakeup() == kMax);
  // The nodes can be armed again, either way.
  wheel.arm(a, at_ns(20'000'000));
  wheel.arm_after(b, 5ms);
  CHECK(wheel.size() == 2);
  CHECK(wheel.advance(at_ns(20'000'000), c) == 1);
  CHECK(b.deadline == at_ns(25'000'000));
  CHECK(wheel.advance(at_ns(25'000'000), c) == 1);
  REQUIRE(c.fired.size() == 2);
  CHECK(c.fired[0] == &a);
  CHECK(c.fired[1] == &b);
}

TEST_CASE("timer_wheel: arm_after keeps arming order, reports due ones in the same advance") {
  TimerWheel wheel(nanoseconds(50'000), at_ns(0));
  std::vector<TimerNode> nodes(5);
  for (TimerNode& n : nodes) wheel.arm_after(n, 0ns);
  TimerNode later;
  wheel.arm_after(later, 2ms);
  Collector c;
  CHECK(wheel.advance(at_ns(3'000'000), c) == nodes.size());
  REQUIRE(c.fired.size() == nodes.size());
  for (std::size_t i = 0; i < nodes.size(); ++i) CHECK(c.fired[i] == &nodes[i]);
  CHECK(later.armed());
  CHECK(later.deadline == at_ns(5'000'000));
  CHECK(wheel.advance(at_ns(5'000'000), c) == 1);
}

TEST_CASE("timer_wheel: arm_after saturates and accepts negative delays") {
  TimerWheel wheel(nanoseconds(50'000), at_ns(0));
  TimerNode forever;
  TimerNode past;
  wheel.arm_after(forever, Clock::duration::max());
  wheel.arm_after(past, -1s);
  Collector c;
  CHECK(wheel.advance(at_ns(1'000'000), c) == 1);
  REQUIRE(c.fired.size() == 1);
  CHECK(c.fired[0] == &past);
  CHECK(forever.deadline == kMax);
  CHECK(forever.armed());
  wheel.clear();
  CHECK(!forever.armed());
  CHECK(wheel.empty());
}

TEST_CASE("timer_wheel: next_wakeup fixes arm_after deadlines from the clock, never early") {
  TimerWheel wheel(nanoseconds(50'000), Clock::now());
  TimerNode node;
  const TP before = Clock::now();
  wheel.arm_after(node, 1s);
  const TP wakeup = wheel.next_wakeup();
  CHECK(wakeup >= before + 1s);
  CHECK(node.deadline == wakeup);
  Collector c;
  CHECK(wheel.advance(before + 999ms, c) == 0);
  CHECK(wheel.advance(wakeup, c) == 1);
}

TEST_CASE("timer_wheel: a callback's arm_after waits for the next advance") {
  TimerWheel wheel(nanoseconds(50'000), at_ns(0));
  TimerNode first;
  TimerNode second;
  wheel.arm(first, at_ns(1'000'000));
  int reported = 0;
  const auto on_expire = [&](TimerNode& n) {
    ++reported;
    if (&n == &first) wheel.arm_after(second, 0ns);
  };
  CHECK(wheel.advance(at_ns(1'000'000), on_expire) == 1);
  CHECK(second.armed());
  CHECK(wheel.advance(at_ns(1'000'000), on_expire) == 1);
  CHECK(reported == 2);
  CHECK(!second.armed());
}
