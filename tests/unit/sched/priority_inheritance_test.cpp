// Priority inheritance through aem::Mutex (CGL 3.2.2), on one core with strict priorities.
// Each test forces its interleaving through the primitives and asserts the recorded order of
// events; a deadline, where one is used, only decides when a step happens, never the order.
#include "support/cores.hpp"

#include <aem/capsule.hpp>
#include <aem/core_arena.hpp>
#include <aem/event.hpp>
#include <aem/mutex.hpp>
#include <aem/runtime.hpp>
#include <aem/semaphore.hpp>
#include <aem/wait_group.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

using namespace std::chrono_literals;

namespace {

using Log = std::vector<std::string>;

aem::Config one_strict_core() {
  aem::Config config = aem_test::config_for(1);
  config.starvation_budget = 0;  // strict: only inheritance can let a low capsule pass
  return config;
}

std::string level(aem::Priority p) { return std::to_string(static_cast<int>(p)); }

template <typename F>
aem::Capsule<void> start(F&& fn, aem::Priority priority) {
  auto capsule = aem::spawn(std::forward<F>(fn), {.priority = priority});
  REQUIRE(capsule);
  return std::move(*capsule);
}

// spawn_mediums starts `n` normal-priority capsules that only record that they ran.
std::vector<aem::Capsule<void>> spawn_mediums(Log& log, int n) {
  std::vector<aem::Capsule<void>> mediums;
  for (int i = 0; i < n; ++i) {
    mediums.push_back(start([&log, i] { log.push_back("M" + std::to_string(i)); }, aem::Priority::normal));
  }
  return mediums;
}

// record runs `scenario(log)` in a critical root capsule on one strict core and returns the log.
template <typename F>
Log record(F scenario) {
  aem::Runtime rt(one_strict_core());
  return rt.run([&] {
    REQUIRE(aem::this_capsule::set_priority(aem::Priority::critical));
    Log log;
    scenario(log);
    return log;
  });
}

// hold_low starts the inversion's holder: a low-priority capsule that locks `mutex`, lets the
// calling (critical) capsule go on, and runs `rest` when it is scheduled again. Returns once
// the mutex is held. One core: the holder is done with `locked` before the caller resumes.
template <typename F>
aem::Capsule<void> hold_low(aem::Mutex& mutex, F rest) {
  aem::Semaphore locked(0);
  auto low = start(
      [&mutex, &locked, rest = std::move(rest)]() mutable {
        mutex.lock();
        locked.release();
        aem::this_capsule::yield();  // the critical caller runs and starts the others
        rest();
      },
      aem::Priority::low);
  locked.acquire();
  return low;
}

void join_all(std::vector<aem::Capsule<void>>& capsules) {
  for (auto& c : capsules) c.join();
}

}  // namespace

TEST_CASE("priority inheritance: a low holder runs before medium capsules while a high one waits") {
  const Log order = record([](Log& log) {
    aem::Mutex mutex;
    auto low = hold_low(mutex, [&] {
      log.push_back("L at " + level(aem::this_capsule::priority()) + " own " +
                    level(aem::this_capsule::base_priority()));
      aem::this_capsule::yield();  // nobody of its inherited level is ready: it goes on
      mutex.unlock();
      log.push_back("L unlocked, at " + level(aem::this_capsule::priority()));
      aem::this_capsule::yield();
      log.push_back("L done");
    });
    auto mediums = spawn_mediums(log, 3);
    auto high = start(
        [&] {
          log.push_back("H wants");
          mutex.lock();
          log.push_back("H got");
          mutex.unlock();
        },
        aem::Priority::high);
    high.join();
    join_all(mediums);
    low.join();
  });
  const Log expected = {"H wants", "L at 6 own 2", "L unlocked, at 2", "H got", "M0", "M1", "M2", "L done"};
  CHECK(order == expected);
}

TEST_CASE("priority inheritance: a priority passes along a chain of mutexes and is given back") {
  const Log order = record([](Log& log) {
    aem::Mutex first;   // held by L, wanted by X
    aem::Mutex second;  // held by X, wanted by H
    aem::Semaphore step(0);
    auto low = hold_low(first, [&] {
      log.push_back("L at " + level(aem::this_capsule::priority()));
      first.unlock();
      log.push_back("L unlocked, at " + level(aem::this_capsule::priority()));
      aem::this_capsule::yield();
      log.push_back("L done");
    });
    auto middle = start(
        [&] {
          second.lock();
          step.release();
          first.lock();  // waits for L, lending it normal
          log.push_back("X got first, at " + level(aem::this_capsule::priority()));
          first.unlock();
          second.unlock();
          log.push_back("X unlocked both, at " + level(aem::this_capsule::priority()));
        },
        aem::Priority::normal);
    step.acquire();
    auto mediums = spawn_mediums(log, 3);
    auto high = start(
        [&] {
          log.push_back("H wants");
          second.lock();  // waits for X, which waits for L: both run at high
          log.push_back("H got");
          second.unlock();
        },
        aem::Priority::high);
    high.join();
    middle.join();
    join_all(mediums);
    low.join();
  });
  const Log expected = {"H wants",        "L at 6",           "L unlocked, at 2",
                        "X got first, at 6", "X unlocked both, at 4", "H got",
                        "M0",             "M1",               "M2",
                        "L done"};
  CHECK(order == expected);
}

TEST_CASE("priority inheritance: a waiter that gives up takes its priority back from the holder") {
  const Log order = record([](Log& log) {
    aem::Mutex mutex;
    bool gave_up = false;
    auto low = hold_low(mutex, [&] {
      // Runs at high, so no medium capsule runs, until the high waiter's deadline passes.
      while (!gave_up) aem::this_capsule::yield();
      log.push_back("L at " + level(aem::this_capsule::priority()));
      mutex.unlock();
    });
    auto mediums = spawn_mediums(log, 3);
    auto high = start(
        [&] {
          log.push_back("H wants");
          const aem::Result<void> got = mutex.lock(aem::Deadline(2ms));
          log.push_back(got ? "H got" : "H gave up");
          gave_up = true;
        },
        aem::Priority::high);
    high.join();
    join_all(mediums);
    low.join();
  });
  const Log expected = {"H wants", "H gave up", "M0", "M1", "M2", "L at 2"};
  CHECK(order == expected);
}

TEST_CASE("priority inheritance: set_priority while boosted changes the own priority, not the loan") {
  const Log order = record([](Log& log) {
    aem::Mutex mutex;
    auto low = hold_low(mutex, [&] {
      REQUIRE(aem::this_capsule::set_priority(aem::Priority{1}));
      log.push_back("L at " + level(aem::this_capsule::priority()) + " own " +
                    level(aem::this_capsule::base_priority()));
      mutex.unlock();
      log.push_back("L unlocked, at " + level(aem::this_capsule::priority()));
    });
    auto high = start(
        [&] {
          mutex.lock();
          log.push_back("H got");
          mutex.unlock();
        },
        aem::Priority::high);
    high.join();
    low.join();
  });
  const Log expected = {"L at 6 own 1", "L unlocked, at 1", "H got"};
  CHECK(order == expected);
}

// A keepalive capsule boosted by a more urgent activation queued behind it keeps that boost
// across a mutex it locks and unlocks: the unlock gives back only what a waiter lent.
TEST_CASE("priority inheritance: a keepalive capsule keeps the boost it owes its queue across a mutex") {
  const Log order = record([](Log& log) {
    aem::Mutex mutex;
    aem::WaitGroup served;
    served.add(2);
    aem::EventId self{};
    auto id = aem::on_event(
        [&](aem::EventData d) {
          const std::string name(reinterpret_cast<const char*>(d.data()), d.size());
          if (name == "first") {
            // A high activation queued behind this one: the capsule owes it.
            REQUIRE(aem::trigger(self, aem::EventData{}, aem::Priority::high));
            log.push_back("first at " + level(aem::this_capsule::priority()));
            mutex.lock();
            mutex.unlock();
            log.push_back("first after unlock at " + level(aem::this_capsule::priority()));
          } else {
            log.push_back("second at " + level(aem::this_capsule::priority()));
          }
          served.done();
        },
        {.priority = aem::Priority::low, .exec = aem::Executor::keepalive});
    REQUIRE(id);
    self = *id;
    auto bytes = aem::this_core::allocate_data(5);
    REQUIRE(bytes);
    std::memcpy(bytes->data(), "first", 5);
    REQUIRE(aem::trigger(*id, std::move(*bytes)));
    served.wait();
    REQUIRE(aem::cancel(*id));
  });
  const std::string high = level(aem::Priority::high);
  const Log expected = {"first at " + high, "first after unlock at " + high, "second at " + high};
  CHECK(order == expected);
}

namespace {

aem::Config two_strict_cores() {
  aem::Config config = aem_test::config_for(2);
  config.starvation_budget = 0;
  return config;
}

// spin_normal starts a normal-priority capsule on core 0 that keeps yielding until `stop`, so
// a low capsule of core 0 runs only if something raises it; after `limit` it gives up and
// says so in `gave_up` (the failure path ends instead of hanging).
aem::Capsule<void> spin_normal(std::atomic<bool>& stop, std::atomic<bool>& gave_up,
                               std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  return start(
      [&stop, &gave_up, limit] {
        const auto until = std::chrono::steady_clock::now() + limit;
        while (!stop.load()) {
          if (std::chrono::steady_clock::now() > until) {
            gave_up = true;
            return;
          }
          aem::this_capsule::yield();
        }
      },
      aem::Priority::normal);
}

}  // namespace

// A high capsule on core 1 waits for a mutex a low capsule of core 0 holds, while core 0 is
// kept busy at normal priority: the holder runs only because it inherits the waiter's priority
// across cores.
TEST_CASE("priority inheritance: a waiter on another core lends its priority to the holder") {
  aem::Runtime rt(two_strict_cores());
  rt.run([] {
    REQUIRE(aem::this_capsule::set_priority(aem::Priority::critical));
    aem::Mutex mutex;
    std::atomic<bool> got{false}, gave_up{false};
    aem::Priority holder_at = aem::Priority::idle;
    auto low = hold_low(mutex, [&] {
      holder_at = aem::this_capsule::priority();
      mutex.unlock();
    });
    auto busy = spin_normal(got, gave_up);
    auto high = aem::spawn(
        [&] {
          mutex.lock();
          got = true;
          mutex.unlock();
        },
        {.priority = aem::Priority::high, .core = 1});
    REQUIRE(high);
    high->join();
    busy.join();
    low.join();
    CHECK_FALSE(gave_up.load());
    CHECK(holder_at == aem::Priority::high);
  });
}

// The waiter on core 1 gives up (deadline): the holder on core 0 drops back to its own priority.
TEST_CASE("priority inheritance: a waiter on another core that gives up takes its loan back") {
  aem::Runtime rt(two_strict_cores());
  rt.run([] {
    REQUIRE(aem::this_capsule::set_priority(aem::Priority::critical));
    aem::Mutex mutex;
    aem::Semaphore go(0);
    std::atomic<bool> stop{false}, gave_up{false};
    std::vector<aem::Priority> holder_at;  // written by the holder only, read after its join
    auto low = hold_low(mutex, [&] {
      holder_at.push_back(aem::this_capsule::priority());  // raised: it runs despite `busy`
      go.acquire();  // still holding the mutex while the waiter gives up
      holder_at.push_back(aem::this_capsule::priority());
      mutex.unlock();
    });
    auto busy = spin_normal(stop, gave_up);
    auto high = aem::spawn(
        [&] {
          const bool locked = static_cast<bool>(mutex.lock(aem::Deadline(100ms)));
          stop = true;  // the take-back note is on its way to core 0 already
          go.release();
          return locked;
        },
        {.priority = aem::Priority::high, .core = 1});
    REQUIRE(high);
    CHECK_FALSE(high->join());
    busy.join();
    low.join();
    CHECK_FALSE(gave_up.load());
    CHECK(holder_at == std::vector<aem::Priority>{aem::Priority::high, aem::Priority::low});
  });
}
