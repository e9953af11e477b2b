// aem::Semaphore: permits, release(n) to waiters on other cores, and acquire with a deadline
// (also racing releases: no permit lost or duplicated).
#include "support/cores.hpp"
#include "support/sync_helpers.hpp"

#include <aem/capsule.hpp>
#include <aem/runtime.hpp>
#include <aem/semaphore.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <random>
#include <vector>

using namespace std::chrono_literals;
using namespace aem_test;  // is, spawn_on, spin_for, yield_until

TEST_CASE("sync: semaphore counts permits and times out") {
  AEM_FOR_EACH_CORE_COUNT(cores) {
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([cores] {
      aem::Semaphore sem(3);
      CHECK(sem.count() == 3);
      CHECK(sem.try_acquire());
      sem.acquire();
      CHECK(sem.acquire(1ms).has_value());
      CHECK_FALSE(sem.try_acquire());
      CHECK(is(sem.acquire(1ms).error(), aem::errc::timed_out));
      CHECK(is(sem.acquire(aem::Clock::now() - 1s).error(), aem::errc::timed_out));
      sem.release(2);
      CHECK(sem.count() == 2);
      CHECK(sem.acquire(aem::Clock::now() - 1s).has_value());  // available: taken even if late
      CHECK(sem.count() == 1);
      CHECK(sem.try_acquire());

      // release(n) wakes n waiters on other cores; each gets exactly one permit.
      constexpr int kWaiters = 6;
      std::atomic<int> got{0};
      std::vector<aem::Capsule<void>> waiters;
      for (int i = 0; i < kWaiters; ++i) {
        waiters.push_back(spawn_on(static_cast<unsigned>(i) % cores, [&] {
          sem.acquire();
          got.fetch_add(1);
        }));
      }
      sem.release(4);
      yield_until([&] { return got.load() == 4; });
      CHECK(sem.count() == 0);
      sem.release(3);  // two for the last waiters, one left over
      for (auto& w : waiters) w.join();
      CHECK(got.load() == kWaiters);
      CHECK(sem.count() == 1);
    });
  }
}

// ---- deadlines racing hand-offs ------------------------------------------------------------

TEST_CASE("sync: semaphore timeouts racing releases never lose or duplicate a permit") {
  AEM_FOR_EACH_CORE_COUNT(cores) {
    aem::Runtime rt(aem_test::config_for(cores));
    constexpr int kReleases = 3000;
    constexpr int kWaiters = 3;
    constexpr int kAttempts = 1500;
    aem::Semaphore sem;
    std::atomic<long> acquired{0};
    rt.run([&] {
      std::vector<aem::Capsule<void>> all;
      for (int w = 0; w < kWaiters; ++w) {
        all.push_back(spawn_on(0, [&, w] {
          std::mt19937 rng(static_cast<unsigned>(w) + 1);
          for (int i = 0; i < kAttempts; ++i) {
            if (sem.acquire(std::chrono::microseconds(rng() % 100))) acquired.fetch_add(1);
          }
        }));
      }
      all.push_back(spawn_on(cores > 1 ? 1 : 0, [&] {
        std::mt19937 rng(99);
        for (int i = 0; i < kReleases; ++i) {
          sem.release();
          spin_for(static_cast<std::int64_t>(rng() % 60'000));
          if (i % 8 == 0) aem::this_capsule::yield();
        }
      }));
      for (auto& c : all) c.join();
    });
    CHECK(acquired.load() + static_cast<long>(sem.count()) == kReleases);
  }
}
