#include "support/cores.hpp"

#include <aem/capsule.hpp>
#include <aem/cross_core.hpp>
#include <aem/runtime.hpp>
#include <aem/timer.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <vector>

using namespace std::chrono_literals;

TEST_CASE("timers: after fires once, never early, in a capsule at the registration's priority") {
  for (unsigned cores : aem_test::kCoreCounts) {
    CAPTURE(cores);
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([] {
      std::atomic<int> fired{0};
      aem::Priority seen{};
      aem::TimePoint fired_at{};
      const aem::TimePoint armed_at = aem::Clock::now();
      auto id = aem::after(
          2ms,
          [&] {
            seen = aem::this_capsule::priority();
            fired_at = aem::Clock::now();
            fired.fetch_add(1);
          },
          {.priority = aem::Priority::high});
      REQUIRE(id);
      while (fired.load() == 0) aem::this_capsule::sleep_for(1ms);
      aem::this_capsule::sleep_for(5ms);
      CHECK(fired.load() == 1);
      CHECK(seen == aem::Priority::high);
      CHECK(fired_at - armed_at >= 2ms);
      // A one-shot timer that has fired is over: its id is stale.
      CHECK(aem::cancel(*id).error() == aem::errc::stale_event_id);
    });
  }
}

TEST_CASE("timers: every fires repeatedly until cancelled, and a cancelled id is stale") {
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([] {
    std::atomic<int> ticks{0};
    auto id = aem::every(1ms, [&] { ticks.fetch_add(1); });
    REQUIRE(id);
    while (ticks.load() < 5) aem::this_capsule::sleep_for(1ms);
    REQUIRE(aem::cancel(*id));
    const int at_cancel = ticks.load();
    aem::this_capsule::sleep_for(10ms);
    CHECK(ticks.load() == at_cancel);
    CHECK(aem::cancel(*id).error() == aem::errc::stale_event_id);
  });
}

TEST_CASE("timers: a cancelled timer never fires: slots are reused under new generations") {
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([] {
    std::atomic<int> fired{0};
    auto first = aem::after(1ms, [&] { fired.fetch_add(1); });
    REQUIRE(first);
    REQUIRE(aem::cancel(*first));
    auto second = aem::after(1ms, [&] { fired.fetch_add(10); });
    REQUIRE(second);
    CHECK(second->slot() == first->slot());
    CHECK(second->generation() != first->generation());
    CHECK(aem::cancel(*first).error() == aem::errc::stale_event_id);
    aem::this_capsule::sleep_for(5ms);
    CHECK(fired.load() == 10);
  });
}

TEST_CASE("timers: ids from other runtimes, invalid ids and other cores") {
  aem::EventId from_first;
  {
    aem::Runtime first(aem_test::config_for(1));
    from_first = first.run([] { return *aem::after(1h, [] {}); });
  }
  aem::Runtime rt(aem_test::config_for(2));
  rt.run([&] {
    CHECK(aem::cancel(from_first).error() == aem::errc::foreign_event_id);
    CHECK(aem::cancel(aem::EventId{}).error() == aem::errc::foreign_event_id);
    // A timer registered on core 1 is cancelled from core 0.
    auto id = aem::submit(1, [] { return *aem::after(1h, [] {}); });
    REQUIRE(id);
    CHECK(id->core() == 1);
    CHECK(aem::cancel(*id));
    CHECK(aem::cancel(*id).error() == aem::errc::stale_event_id);
    CHECK(aem::every(0ms, [] {}).error() == aem::errc::invalid_argument);
    CHECK(aem::after(1ms, [] {}, {.priority = aem::Priority{8}}).error() == aem::errc::invalid_argument);
  });
  CHECK(aem::after(1ms, [] {}).error() == aem::errc::not_in_capsule);
  CHECK(aem::cancel(from_first).error() == aem::errc::not_in_capsule);
}

TEST_CASE("timers: large handlers and handlers that throw") {
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([] {
    std::atomic<int> sum{0};
    std::array<int, 64> big{};
    big[63] = 5;
    auto a = aem::after(1ms, [&sum, big] { sum.fetch_add(big[63]); });
    auto b = aem::after(1ms, []() { throw std::runtime_error("handler failure is reported, not fatal"); });
    REQUIRE(a);
    REQUIRE(b);
    while (sum.load() == 0) aem::this_capsule::sleep_for(1ms);
    CHECK(sum.load() == 5);
  });
}

TEST_CASE("timers: no activation is lost when the capsule pool is exhausted") {
  aem::Config config = aem_test::config_for(1);
  config.capsules_per_core = 4;
  config.max_capsules = 4;
  aem::Runtime rt(config);
  rt.run([] {
    std::atomic<int> fired{0};
    std::atomic<bool> release{false};
    // Hold the other three capsules so that timers find the pool empty.
    std::vector<aem::Capsule<void>> holders;
    for (int i = 0; i < 3; ++i) {
      auto h = aem::spawn([&] {
        while (!release.load()) aem::this_capsule::sleep_for(1ms);
      });
      REQUIRE(h);
      holders.push_back(std::move(*h));
    }
    CHECK(aem::spawn([] {}).error() == aem::errc::resource_limit);
    std::vector<aem::EventId> ids;
    for (int i = 0; i < 20; ++i) {
      auto id = aem::after(1ms, [&] { fired.fetch_add(1); });
      REQUIRE(id);
      ids.push_back(*id);
    }
    aem::this_capsule::sleep_for(5ms);
    CHECK(fired.load() == 0);  // every capsule is busy: the activations wait
    release = true;
    for (auto& h : holders) h.join();
    while (fired.load() < 20) aem::this_capsule::sleep_for(1ms);
    CHECK(fired.load() == 20);
  });
}
