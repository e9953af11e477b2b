#include "support/cores.hpp"

#include <aem/capsule.hpp>
#include <aem/runtime.hpp>

#include <doctest/doctest.h>

#include <future>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

TEST_CASE("embedding: start, submit from foreign threads, stop") {
  for (unsigned cores : aem_test::kCoreCounts) {
    CAPTURE(cores);
    aem::Runtime rt(aem_test::config_for(cores));
    REQUIRE(rt.start());
    CHECK(rt.running());
    CHECK(rt.start().error() == aem::errc::already_running);
    std::vector<std::thread> threads;
    std::vector<long> sums(4, 0);
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        std::vector<std::future<long>> futures;
        for (int i = 0; i < 500; ++i) {
          futures.push_back(rt.submit(static_cast<unsigned>(i) % cores, [i, cores] {
            if (i % 50 == 0) aem::this_capsule::sleep_for(100us);  // blocking style inside
            return static_cast<long>(aem::this_core::id() == static_cast<unsigned>(i) % cores ? i : -1'000'000);
          }));
        }
        for (auto& f : futures) sums[t] += f.get();
      });
    }
    for (auto& th : threads) th.join();
    for (long s : sums) CHECK(s == 499 * 500 / 2);
    // Exceptions travel through the future.
    auto failing = rt.submit(0, []() -> int { throw std::runtime_error("inside"); });
    CHECK_THROWS_WITH_AS(failing.get(), "inside", std::runtime_error);
    auto bad_core = rt.submit(99, [] { return 1; });
    CHECK_THROWS_AS(bad_core.get(), std::system_error);
    rt.stop();
    CHECK_FALSE(rt.running());
    auto late = rt.submit(0, [] { return 1; });
    try {
      late.get();
      FAIL("a submit after stop must fail");
    } catch (const std::system_error& e) {
      CHECK(e.code() == aem::errc::not_running);
    }
  }
}

TEST_CASE("embedding: run from inside a capsule is refused: the runtime restarts after stop") {
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([&] {
    aem::Runtime inner(aem_test::config_for(1));
    CHECK_THROWS_AS(inner.run([] { return 0; }), std::system_error);
    CHECK(inner.start().error() == aem::errc::already_running);
  });
  REQUIRE(rt.start());
  CHECK(rt.submit(0, [] { return 3; }).get() == 3);
  rt.stop();
  rt.stop();  // idempotent
}
