// aem::WaitGroup: waiters on every core released by the last done(), wait with a deadline,
// and a done() without a matching add().
#include "support/cores.hpp"
#include "support/sync_helpers.hpp"

#include <aem/capsule.hpp>
#include <aem/cross_core.hpp>
#include <aem/runtime.hpp>
#include <aem/wait_group.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <vector>

using namespace std::chrono_literals;
using namespace aem_test;  // is, spawn_on

TEST_CASE("sync: wait group waits for capsules on all cores") {
  AEM_FOR_EACH_CORE_COUNT(cores) {
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([cores] {
      aem::WaitGroup wg;
      CHECK(wg.wait(aem::Clock::now() - 1s).has_value());  // zero: no wait at all
      wg.wait();
      constexpr int kTasks = 40;
      std::atomic<int> finished{0};
      wg.add(kTasks);
      for (int i = 0; i < kTasks; ++i) {
        REQUIRE(aem::post(static_cast<unsigned>(i) % cores, [&] {
          aem::this_capsule::yield();
          finished.fetch_add(1);
          wg.done();
        }));
      }
      // Several waiters on different cores are all released by the last done().
      std::vector<aem::Capsule<void>> waiters;
      for (unsigned c = 0; c < cores; ++c) {
        waiters.push_back(spawn_on(c, [&] {
          wg.wait();
          CHECK(finished.load() == kTasks);
        }));
      }
      wg.wait();
      CHECK(finished.load() == kTasks);
      CHECK(wg.count() == 0);
      for (auto& w : waiters) w.join();

      wg.add();
      CHECK(is(wg.wait(1ms).error(), aem::errc::timed_out));
      wg.done();
      CHECK(wg.wait(1ms).has_value());
      CHECK_THROWS_AS(wg.done(), std::logic_error);
      CHECK(wg.count() == 0);
    });
  }
}
