#include "support/cores.hpp"

#include <aem/capsule.hpp>
#include <aem/cross_core.hpp>
#include <aem/runtime.hpp>

#include <doctest/doctest.h>

#include <array>
#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

TEST_CASE("run returns the root capsule's value on every core count") {
  for (unsigned cores : aem_test::kCoreCounts) {
    CAPTURE(cores);
    aem::Runtime rt(aem_test::config_for(cores));
    CHECK(rt.cores() == cores);
    const int value = rt.run([] {
      CHECK(aem::this_capsule::inside());
      CHECK(aem::this_core::id() == 0);
      return 42;
    });
    CHECK(value == 42);
    CHECK_FALSE(rt.running());
  }
}

TEST_CASE("run rethrows what the root capsule threw, and the runtime can run again") {
  aem::Runtime rt(aem_test::config_for(2));
  CHECK_THROWS_WITH_AS(rt.run([]() -> int { throw std::runtime_error("boom"); }), "boom", std::runtime_error);
  CHECK(rt.run([] { return std::string("again"); }) == "again");
}

TEST_CASE("spawn and join on the same and on other cores") {
  for (unsigned cores : aem_test::kCoreCounts) {
    CAPTURE(cores);
    aem::Runtime rt(aem_test::config_for(cores));
    const long total = rt.run([cores] {
      std::vector<aem::Capsule<long>> children;
      for (unsigned i = 0; i < 100; ++i) {
        auto child = aem::spawn(
            [i, cores] {
              CHECK(aem::this_core::id() == i % cores);
              aem::this_capsule::yield();
              return static_cast<long>(i);
            },
            {.core = i % cores});
        REQUIRE(child);
        children.push_back(std::move(*child));
      }
      long sum = 0;
      for (auto& child : children) sum += child.join();
      return sum;
    });
    CHECK(total == 99 * 100 / 2);
  }
}

TEST_CASE("join rethrows the child's exception, across cores too") {
  aem::Runtime rt(aem_test::config_for(2));
  rt.run([] {
    for (unsigned core : {0u, 1u}) {
      auto child = aem::spawn([]() -> int { throw std::logic_error("child failed"); }, {.core = core});
      REQUIRE(child);
      CHECK_THROWS_WITH_AS(child->join(), "child failed", std::logic_error);
    }
  });
}

TEST_CASE("capsules with large captures spill out of the frame and still work") {
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([] {
    std::array<char, 4096> big{};
    big[4095] = 7;
    auto child = aem::spawn([big] { return static_cast<int>(big[4095]); });
    REQUIRE(child);
    CHECK(child->join() == 7);
  });
}

TEST_CASE("detached capsules run to completion") {
  for (unsigned cores : aem_test::kCoreCounts) {
    CAPTURE(cores);
    std::atomic<int> ran{0};
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([&] {
      for (unsigned i = 0; i < 50; ++i) {
        auto c = aem::spawn([&] { ran.fetch_add(1); }, {.core = i % cores});
        REQUIRE(c);
        c->detach();
      }
      // Wait without joining: the detached capsules finish on their own.
      while (ran.load() < 50) aem::this_capsule::yield();
    });
    CHECK(ran.load() == 50);
  }
}

TEST_CASE("spawn reports bad arguments as error codes") {
  aem::Runtime rt(aem_test::config_for(2));
  rt.run([] {
    auto bad_core = aem::spawn([] {}, {.core = 7});
    CHECK(bad_core.error() == aem::errc::no_such_core);
    auto bad_priority = aem::spawn([] {}, {.priority = aem::Priority{9}});
    CHECK(bad_priority.error() == aem::errc::invalid_argument);
    CHECK(aem::this_capsule::set_priority(aem::Priority{8}).error() == aem::errc::invalid_argument);
  });
  auto outside = aem::spawn([] {});
  CHECK(outside.error() == aem::errc::not_in_capsule);
  CHECK(aem::this_capsule::id() == 0);
  CHECK(aem::this_core::id() == aem::this_core::kNone);
}

TEST_CASE("a run_budget of 0 makes start fail cleanly instead of running nothing") {
  aem::Config config = aem_test::config_for(2);
  config.run_budget = 0;
  aem::Runtime rt(config);
  auto started = rt.start();
  REQUIRE_FALSE(started);
  CHECK(started.error() == aem::errc::invalid_argument);
  CHECK_FALSE(rt.running());
}

TEST_CASE("a coalescing window out of range or a batch of 0 makes start fail cleanly") {
  for (const auto& bounds : {std::pair{-1us, 64u}, std::pair{1s + 1us, 64u}, std::pair{50us, 0u}}) {
    const auto window = bounds.first;
    const unsigned batch = bounds.second;
    CAPTURE(window.count());
    CAPTURE(batch);
    aem::Config config = aem_test::config_for(1);
    config.coalesce_window = window;
    config.coalesce_batch = batch;
    aem::Runtime rt(config);
    auto started = rt.start();
    REQUIRE_FALSE(started);
    CHECK(started.error() == aem::errc::invalid_argument);
    CHECK_FALSE(rt.running());
  }
  aem::Config config = aem_test::config_for(1);
  config.coalesce_window = 1s;  // the bound itself is allowed
  aem::Runtime rt(config);
  CHECK(rt.run([] { return 7; }) == 7);
}

TEST_CASE("submit runs on the target core and suspends only the caller") {
  for (unsigned cores : aem_test::kCoreCounts) {
    CAPTURE(cores);
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([cores] {
      const unsigned target = cores - 1;
      std::atomic<bool> other_ran{false};
      auto other = aem::spawn([&] { other_ran = true; });  // same core as the caller
      REQUIRE(other);
      aem::Result<unsigned> where = aem::submit(target, [] {
        aem::this_capsule::sleep_for(1ms);
        return aem::this_core::id();
      });
      REQUIRE(where);
      CHECK(*where == target);
      CHECK(other_ran.load());  // the caller's core kept running capsules while it waited
      other->join();
      CHECK_THROWS_WITH_AS((void)aem::submit(target, []() -> int { throw std::runtime_error("remote"); }), "remote",
                           std::runtime_error);
      CHECK(aem::submit(99, [] { return 1; }).error() == aem::errc::no_such_core);
    });
  }
}

TEST_CASE("post runs a function in a fresh capsule on the target core and returns at once") {
  for (unsigned cores : aem_test::kCoreCounts) {
    CAPTURE(cores);
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([cores] {
      std::atomic<int> ran{0};
      std::atomic<unsigned> wrong_core{0};
      for (unsigned i = 0; i < 40; ++i) {
        const unsigned target = i % cores;
        REQUIRE(aem::post(target, [&, target] {
          if (aem::this_core::id() != target) wrong_core.fetch_add(1);
          ran.fetch_add(1);
        }));
      }
      while (ran.load() < 40) aem::this_capsule::yield();
      CHECK(wrong_core.load() == 0);
      CHECK(aem::post(cores, [] {}).error() == aem::errc::no_such_core);
    });
  }
}
