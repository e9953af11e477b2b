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

TEST_CASE("idle spin: a sleep ended by a message judges the window by the message, however late the wake-up") {
  IdleSpin spin(20us);
  for (int i = 0; i < 3; ++i) spin.slept(1ms);
  REQUIRE(spin.window() == 0us);
  // Woken 26 us into the stretch (longer than the limit) by a message that came after 1 us:
  // a poll of 1 us would have caught it.
  spin.woken(26us, 1us);
  CHECK(spin.window() == 5us);
  CHECK(spin.wake_latency() == 25us);
  spin.woken(30us, 2us);
  CHECK(spin.window() == 10us);
  CHECK(spin.wake_latency() == 25750ns);  // (3 * 25 us + 28 us) / 4
  // A message that came later than the limit shrinks it as a long sleep does.
  spin.woken(60us, 40us);
  CHECK(spin.window() == 5us);
  // An arrival outside the stretch is taken as the stretch's end or start.
  spin.woken(10us, 50us);
  CHECK(spin.window() == 10us);
}

TEST_CASE("idle spin: awaiting a reply polls the limit plus the learnt wake-up latency") {
  IdleSpin spin(20us);
  CHECK(spin.awaiting_window() == 20us);  // nothing learnt yet
  for (int i = 0; i < 3; ++i) spin.slept(1ms);
  REQUIRE(spin.window() == 0us);
  CHECK(spin.awaiting_window() == 20us);  // the window shrank, the wait for a reply did not
  spin.woken(1ms, 1ms - 25us);
  CHECK(spin.awaiting_window() == 45us);
  // A preempted wake-up counts at most eight limits.
  IdleSpin slow(20us);
  slow.woken(10ms, 0us);
  CHECK(slow.wake_latency() == 160us);
  CHECK(slow.awaiting_window() == 180us);
  IdleSpin off(0us);
  off.woken(1ms, 0us);
  CHECK(off.awaiting_window() == 0us);
  CHECK(off.window() == 0us);
}

// Two cores playing ping-pong (aem::submit back to back) where a wake-up takes longer than the
// limit, modelled step by step: the client core awaits each reply, the server core just idles
// between requests. Both polls start collapsed (after long pauses). In the old scheme every
// stretch that ended in a wake-up was longer than the limit, so neither poll ever came back and
// every round paid two wake-ups; now, after a few rounds, the polls catch every message.
TEST_CASE("idle spin: two cores whose wake-ups are slower than the limit do not lock each other out of polling") {
  constexpr auto kLimit = 20us;
  constexpr auto kWake = 25us;  // from a message to its sleeping receiver running
  constexpr auto kWork = 1us;   // each side's work between its idle stretches
  IdleSpin client(kLimit);
  IdleSpin server(kLimit);
  for (int i = 0; i < 3; ++i) {
    client.slept(1ms);
    server.slept(1ms);
  }
  REQUIRE(client.window() == 0us);
  REQUIRE(server.window() == 0us);
  aem::Duration now{};
  aem::Duration server_idle_since{};
  int late_wakeups = 0;
  for (int round = 0; round < 100; ++round) {
    const aem::Duration sent = now;  // the client sends and goes idle awaiting the reply
    aem::Duration served = sent;
    if (sent - server_idle_since > server.window()) {
      served = sent + kWake;
      server.woken(served - server_idle_since, sent - server_idle_since);
      if (round >= 10) ++late_wakeups;
    }
    const aem::Duration replied = served + kWork;
    server_idle_since = replied;
    aem::Duration resumed = replied;
    if (replied - sent > client.awaiting_window()) {
      resumed = replied + kWake;
      client.woken(resumed - sent, replied - sent);
      if (round >= 10) ++late_wakeups;
    }
    now = resumed + kWork;
  }
  CHECK(late_wakeups == 0);
  CHECK(server.window() > 0us);
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
