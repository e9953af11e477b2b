#include "support/cores.hpp"

#include <aem/capsule.hpp>
#include <aem/cross_core.hpp>
#include <aem/runtime.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <future>
#include <random>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

TEST_CASE("runtime stress: nested spawns on random cores and priorities add up") {
  for (unsigned cores : aem_test::kCoreCounts) {
    CAPTURE(cores);
    aem::Config config = aem_test::config_for(cores);
    config.max_capsules = 4096;
    aem::Runtime rt(config);
    const long total = rt.run([cores] {
      std::vector<aem::Capsule<long>> parents;
      for (unsigned p = 0; p < 64; ++p) {
        auto parent = aem::spawn(
            [p, cores] {
              std::mt19937 rng(p);
              long sum = 0;
              std::vector<aem::Capsule<long>> children;
              for (int i = 0; i < 300; ++i) {
                const auto priority = static_cast<aem::Priority>(rng() % aem::kPriorityLevels);
                auto child = aem::spawn(
                    [i] {
                      if (i % 7 == 0) aem::this_capsule::yield();
                      return static_cast<long>(i);
                    },
                    {.priority = priority, .core = static_cast<unsigned>(rng() % cores)});
                REQUIRE(child);
                children.push_back(std::move(*child));
                if (children.size() == 32) {
                  for (auto& c : children) sum += c.join();
                  children.clear();
                }
              }
              for (auto& c : children) sum += c.join();
              return sum;
            },
            {.core = p % cores});
        REQUIRE(parent);
        parents.push_back(std::move(*parent));
      }
      long sum = 0;
      for (auto& p : parents) sum += p.join();
      return sum;
    });
    CHECK(total == 64L * (299L * 300L / 2));
  }
}

TEST_CASE("runtime stress: cross-core round trips with sleeping cores lose no wake-up") {
  for (unsigned cores : {2u, 4u}) {
    CAPTURE(cores);
    aem::Config config = aem_test::config_for(cores);
    config.idle_spin = 0us;  // every wait goes through the sleep handshake
    aem::Runtime rt(config);
    const long v = rt.run([cores] {
      long value = 0;
      for (int i = 0; i < 20'000; ++i) {
        value = aem::submit(1 + static_cast<unsigned>(i) % (cores - 1), [value] { return value + 1; }).value();
      }
      return value;
    });
    CHECK(v == 20'000);
  }
}

TEST_CASE("runtime stress: foreign submissions racing stop always resolve") {
  for (int round = 0; round < 30; ++round) {
    CAPTURE(round);
    aem::Runtime rt(aem_test::config_for(2));
    REQUIRE(rt.start());
    std::atomic<int> resolved{0}, ran{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 3; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 200; ++i) {
          auto f = rt.submit(static_cast<unsigned>(i + t) % 2, [] { return 1; });
          try {
            ran += f.get();
          } catch (const std::system_error& e) {
            CHECK((e.code() == aem::errc::shutting_down || e.code() == aem::errc::not_running));
          }
          ++resolved;
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::microseconds(100 * round));
    rt.stop();
    for (auto& th : threads) th.join();
    CHECK(resolved.load() == 600);
  }
}
