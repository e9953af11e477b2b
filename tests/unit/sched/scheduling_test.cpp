#include "support/cores.hpp"

#include <aem/capsule.hpp>
#include <aem/cross_core.hpp>
#include <aem/fd_io.hpp>
#include <aem/runtime.hpp>
#include <aem/timer.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <thread>
#include <unistd.h>
#include <random>
#include <utility>
#include <vector>

using namespace std::chrono_literals;

TEST_CASE("scheduling: strict priority across levels, FIFO within a level") {
  aem::Config config = aem_test::config_for(1);
  config.starvation_budget = 0;  // strict
  aem::Runtime rt(config);
  const auto order = rt.run([] {
    REQUIRE(aem::this_capsule::set_priority(aem::Priority::critical));
    std::vector<std::pair<int, int>> ran;  // (level, spawn sequence)
    std::vector<aem::Capsule<void>> children;
    std::mt19937 rng(42);
    for (int seq = 0; seq < 200; ++seq) {
      const int level = static_cast<int>(rng() % aem::kPriorityLevels);
      auto c = aem::spawn([&ran, level, seq] { ran.emplace_back(level, seq); },
                          {.priority = static_cast<aem::Priority>(level)});
      REQUIRE(c);
      children.push_back(std::move(*c));
    }
    CHECK(ran.empty());  // nothing ran while the critical capsule kept the core
    for (auto& c : children) c.join();
    return ran;
  });
  REQUIRE(order.size() == 200);
  auto expected = order;
  std::stable_sort(expected.begin(), expected.end(), [](auto a, auto b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  CHECK(order == expected);
}

TEST_CASE("scheduling: the starvation budget bounds how long a low level waits under a flood") {
  for (unsigned budget : {1u, 4u, 32u}) {
    CAPTURE(budget);
    aem::Config config = aem_test::config_for(1);
    config.starvation_budget = budget;
    aem::Runtime rt(config);
    const long picks_before_low = rt.run([] {
      long flood_picks = 0;
      long seen_by_low = -1;
      bool done = false;
      std::vector<aem::Capsule<void>> flood;
      for (int i = 0; i < 3; ++i) {
        auto c = aem::spawn(
            [&] {
              while (!done) {
                ++flood_picks;
                aem::this_capsule::yield();
              }
            },
            {.priority = aem::Priority::high});
        REQUIRE(c);
        flood.push_back(std::move(*c));
      }
      auto low = aem::spawn(
          [&] {
            seen_by_low = flood_picks;
            done = true;
          },
          {.priority = aem::Priority::idle});
      REQUIRE(low);
      low->join();
      for (auto& c : flood) c.join();
      return seen_by_low;
    });
    // The first `budget` picks go to the flood; within (levels-1)·(budget+1) picks the lone
    // low capsule must have had its turn (ReadyQueue's documented bound with k = 0).
    CHECK(picks_before_low >= static_cast<long>(budget));
    CHECK(picks_before_low <= static_cast<long>((aem::kPriorityLevels - 1) * (budget + 1)));
  }
}

TEST_CASE("scheduling: set_priority takes effect at the next suspension") {
  aem::Config config = aem_test::config_for(1);
  config.starvation_budget = 0;
  aem::Runtime rt(config);
  rt.run([] {
    std::vector<int> ran;
    auto a = aem::spawn([&] {
      REQUIRE(aem::this_capsule::set_priority(aem::Priority::idle));
      aem::this_capsule::yield();  // now behind b
      ran.push_back(1);
    });
    auto b = aem::spawn([&] { ran.push_back(2); }, {.priority = aem::Priority::low});
    REQUIRE(a);
    REQUIRE(b);
    a->join();
    b->join();
    CHECK(ran == std::vector<int>{2, 1});
    CHECK(aem::this_capsule::priority() == aem::Priority::normal);
  });
}

TEST_CASE("scheduling: sleep never returns early and yields the core to others") {
  for (unsigned cores : aem_test::kCoreCounts) {
    CAPTURE(cores);
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([cores] {
      std::vector<aem::Capsule<bool>> sleepers;
      for (unsigned i = 0; i < 40; ++i) {
        auto c = aem::spawn(
            [i] {
              const auto want = std::chrono::microseconds(100 * (i % 20));
              const auto t0 = aem::Clock::now();
              aem::this_capsule::sleep_for(want);
              return aem::Clock::now() - t0 >= want;
            },
            {.core = i % cores});
        REQUIRE(c);
        sleepers.push_back(std::move(*c));
      }
      for (auto& s : sleepers) CHECK(s.join());
      // A sleep in the past or of zero returns at once, after letting others run.
      aem::this_capsule::sleep_until(aem::Clock::now() - 1s);
      aem::this_capsule::sleep_for(0ms);
    });
  }
}

TEST_CASE("scheduling: capsule ids are unique and carry their core") {
  aem::Runtime rt(aem_test::config_for(2));
  rt.run([] {
    auto here = aem::spawn([] { return aem::this_capsule::id(); });
    auto there = aem::spawn([] { return aem::this_capsule::id(); }, {.core = 1});
    REQUIRE(here);
    REQUIRE(there);
    const aem::CapsuleId a = here->join(), b = there->join();
    CHECK(a != b);
    CHECK((a >> 56) == 0);
    CHECK((b >> 56) == 1);
    CHECK(aem::this_capsule::id() != a);
    CHECK(aem::this_core::count() == 2);
  });
}

// A capsule that spins on yield() with nobody else ready must still let the loop deliver what
// would make someone ready: a timer, a cross-core message, an I/O completion.
TEST_CASE("scheduling: spinning on yield lets the loop deliver timers, mail and completions") {
  AEM_FOR_EACH_CORE_COUNT(cores) {
    aem::Runtime rt(aem_test::config_for(cores));
    const auto seen = rt.run([&] {
      constexpr long kBound = 200'000'000;  // a hang guard, far above what is needed
      std::atomic<bool> flag{false};
      auto timer = aem::after(1ms, [&flag] { flag = true; });
      REQUIRE(timer);
      long spins = 0;
      while (!flag && spins < kBound) { aem::this_capsule::yield(); ++spins; }
      const bool by_timer = flag.exchange(false);

      // Mail: a task posted to this core from another one (or from this one when alone).
      auto poster = aem::spawn([&flag] { (void)aem::post(0, [&flag] { flag = true; }); },
                               {.core = cores - 1});
      REQUIRE(poster);
      poster->detach();
      for (spins = 0; !flag && spins < kBound; ++spins) aem::this_capsule::yield();
      const bool by_mail = flag.exchange(false);

      // A completion: a child blocked in a read is woken when a plain thread writes.
      int fds[2];
      REQUIRE(::pipe(fds) == 0);
      auto reader = aem::spawn([&flag, fd = fds[0]] {
        std::byte b[1];
        if (aem::read(fd, b)) flag = true;
      });
      REQUIRE(reader);
      aem::this_capsule::yield();  // let the reader submit its read
      std::thread writer([fd = fds[1]] { (void)::write(fd, "x", 1); });
      for (spins = 0; !flag && spins < kBound; ++spins) aem::this_capsule::yield();
      writer.join();
      reader->join();
      ::close(fds[0]);
      ::close(fds[1]);
      return std::array<bool, 3>{by_timer, by_mail, flag.load()};
    });
    CHECK(seen[0]);
    CHECK(seen[1]);
    CHECK(seen[2]);
  }
}

// The same with a lower-priority capsule ready: a yield then finds nobody of its level to run
// and returns at once, yet the loop must still get its turn (mail here) within the budget.
TEST_CASE("scheduling: spinning on yield above a ready lower capsule still lets mail in") {
  AEM_FOR_EACH_CORE_COUNT(cores) {
    if (cores < 2) continue;  // the mail must come from another core while this one spins
    aem::Config config = aem_test::config_for(cores);
    config.starvation_budget = 0;  // strict: the low capsule cannot run while we spin
    aem::Runtime rt(config);
    const bool by_mail = rt.run([&] {
      constexpr long kBound = 200'000'000;  // a hang guard, far above what is needed
      std::atomic<bool> spinning{false}, flag{false};
      auto low = aem::spawn([] {}, {.priority = aem::Priority::low});
      REQUIRE(low);
      auto poster = aem::spawn(
          [&] {
            while (!spinning) aem::this_capsule::yield();
            (void)aem::post(0, [&flag] { flag = true; }, aem::Priority::high);
          },
          {.core = cores - 1});
      REQUIRE(poster);
      spinning = true;
      for (long spins = 0; !flag && spins < kBound; ++spins) aem::this_capsule::yield();
      poster->join();
      low->join();
      return flag.load();
    });
    CHECK(by_mail);
  }
}
