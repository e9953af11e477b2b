#include "support/cores.hpp"

#include <aem/capsule.hpp>
#include <aem/runtime.hpp>
#include <aem/timer.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <random>
#include <vector>

using namespace std::chrono_literals;

TEST_CASE("timer stress: one million armed timers: half cancelled, the rest fire exactly once") {
  aem::Config config = aem_test::config_for(1);
  config.capsules_per_core = 256;
  aem::Runtime rt(config);
  rt.run([] {
    constexpr int kTimers = 1'000'000;
    std::vector<aem::EventId> ids;
    ids.reserve(kTimers);
    std::vector<std::uint8_t> fired(kTimers, 0);
    std::atomic<int> total{0};
    std::mt19937 rng(7);
    std::uniform_int_distribution<int> delay_us(1000, 200'000);
    for (int i = 0; i < kTimers; ++i) {
      auto id = aem::after(std::chrono::microseconds(delay_us(rng)), [i, &fired, &total] {
        ++fired[i];
        total.fetch_add(1, std::memory_order_relaxed);
      });
      REQUIRE(id);
      ids.push_back(*id);
    }
    int cancelled = 0;
    for (int i = 0; i < kTimers; i += 2) {
      if (aem::cancel(ids[i])) ++cancelled;
    }
    const int expected = kTimers - cancelled;
    while (total.load() < expected) aem::this_capsule::sleep_for(10ms);
    aem::this_capsule::sleep_for(20ms);
    CHECK(total.load() == expected);
    int wrong = 0;
    for (int i = 0; i < kTimers; ++i) {
      const bool was_cancelled = (i % 2 == 0) && fired[i] == 0;
      if (!(fired[i] == 1 || was_cancelled)) ++wrong;
    }
    CHECK(wrong == 0);
  });
}
