// timer_wheel_helpers.hpp — names and a report collector shared by the timing wheel's unit tests
// (unit/sched/timer_wheel*_test.cpp). Time is synthetic: time points are built from nanosecond
// counts, never read from the clock.
#pragma once

#include "runtime/sched/timer_wheel.hpp"

#include <chrono>
#include <cstdint>
#include <vector>

namespace aem_test::timer_wheel {

using aem::detail::Clock;
using aem::detail::TickDivider;
using aem::detail::TimerNode;
using aem::detail::TimerWheel;
using std::chrono::nanoseconds;
using TP = Clock::time_point;

inline constexpr TP kMax = TP::max();
inline constexpr TP kMin = TP::min();

// at_ns is the time point `ns` nanoseconds after the clock's epoch.
inline TP at_ns(std::int64_t ns) { return TP(nanoseconds(ns)); }

// Collector records what advance() reports and checks the per-report invariants.
struct Collector {
  std::vector<TimerNode*> fired;
  bool all_unlinked = true;
  void operator()(TimerNode& n) {
    if (n.armed()) all_unlinked = false;
    fired.push_back(&n);
  }
};

}  // namespace aem_test::timer_wheel
