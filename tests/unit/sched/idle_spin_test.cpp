// The idle poll (Config::idle_spin, runtime/sched/idle_spin.hpp): how its window adapts to the
// idle stretches a core sees, and that a core whose stretches are long stops polling.
#include "runtime/sched/idle_spin.hpp"
#include "support/cores.hpp"

#include <aem/capsule.hpp>
#include <aem/metrics.hpp>
#include <aem/runtime.hpp>

#include <doctest/doctest.h>

#include <chrono>

using namespace std::chrono_literals;
using aem::detail::IdleSpin;

TEST_CASE("idle spin: stretches longer than the limit halve the window down to none") {
  IdleSpin spin(20us);
  CHECK(spin.window() == 20us);  // a fresh core polls the whole limit
  spin.slept(21us);
  CHECK(spin.window() == 10us);
  spin.slept(1ms);
  CHECK(spin.window() == 5us);  // a quarter of the limit: the smallest window that still polls
  spin.slept(1ms);
  CHECK(spin.window() == 0us);
  spin.slept(1s);
  CHECK(spin.window() == 0us);
}

TEST_CASE("idle spin: stretches a longer poll would have caught grow the window back to the limit") {
  IdleSpin spin(20us);
  for (int i = 0; i < 3; ++i) spin.slept(1ms);
  REQUIRE(spin.window() == 0us);
  spin.slept(3us);  // a poll of 3 us would have caught it: start polling again
  CHECK(spin.window() == 5us);
  spin.slept(20us);  // the limit itself still counts as catchable
  CHECK(spin.window() == 10us);
  spin.slept(12us);
  CHECK(spin.window() == 20us);
  spin.slept(1us);
  CHECK(spin.window() == 20us);  // never past the limit
}

TEST_CASE("idle spin: a limit of 0 never polls, and odd limits keep their bounds") {
  IdleSpin off(0us);
  off.slept(1ns);
  CHECK(off.window() == 0us);
  off.slept(1s);
  CHECK(off.window() == 0us);

  IdleSpin odd(7ns);  // a quarter of 7 ns rounds down to 1 ns
  odd.slept(8ns);
  CHECK(odd.window() == 3ns);
  odd.slept(8ns);
  CHECK(odd.window() == 1ns);
  odd.slept(8ns);
  CHECK(odd.window() == 0ns);
  for (int i = 0; i < 10; ++i) odd.slept(1ns);
  CHECK(odd.window() == 7ns);
}

TEST_CASE("idle spin: a core that sleeps longer than the limit stops polling, and counts what it polled") {
  aem::Config config = aem_test::config_for(1);
  constexpr auto kLimit = 2ms;
  constexpr auto kSleep = 5ms;
  constexpr int kSleeps = 30;
  config.idle_spin = kLimit;
  aem::Runtime rt(config);
  rt.run([&] {
    auto spin_ns = [] {
      aem::Result<aem::CoreMetrics> m = aem::this_core::metrics();
      REQUIRE(m);
      return std::chrono::nanoseconds(m->spin_ns);
    };
    const auto before = spin_ns();
    aem::this_capsule::sleep_for(kSleep);
    // Nothing else happens on the core: the first idle stretch polls the whole limit.
    const auto first = spin_ns() - before;
    CHECK(first >= kLimit);
    for (int i = 0; i < kSleeps; ++i) aem::this_capsule::sleep_for(kSleep);
    // A fixed poll would spend the limit on every sleep (60 ms here); the adaptive one halves
    // it on each (1 + 0.5 ms) and then stops. A third of the fixed cost leaves room for a
    // preempted core thread.
    const auto rest = spin_ns() - before - first;
    CHECK(rest < kSleeps * kLimit / 3);
    MESSAGE("polled " << first.count() << " ns on the first sleep, " << rest.count() << " ns on the next " << kSleeps);
  });
}
