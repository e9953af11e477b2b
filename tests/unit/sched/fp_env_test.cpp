// The floating-point control state across switches: capsules share their core thread's unless
// spawned with SpawnOptions::own_fp_env, whose changes then stay their own
// (runtime/fiber/context.hpp).
#include "support/cores.hpp"

#include <aem/capsule.hpp>
#include <aem/runtime.hpp>
#include <aem/timer.hpp>

#include <doctest/doctest.h>

#include <cfenv>
#include <chrono>
#include <vector>

#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

using namespace std::chrono_literals;

namespace {

// flush_to_zero reads MXCSR's flush-to-zero bit (x86-64; elsewhere false): state the rounding
// mode API of <cfenv> does not reach.
bool flush_to_zero() {
#if defined(__x86_64__)
  return (_mm_getcsr() & _MM_FLUSH_ZERO_ON) != 0;
#else
  return false;
#endif
}

void set_flush_to_zero([[maybe_unused]] bool on) {
#if defined(__x86_64__)
  _MM_SET_FLUSH_ZERO_MODE(on ? _MM_FLUSH_ZERO_ON : _MM_FLUSH_ZERO_OFF);
#endif
}

}  // namespace

TEST_CASE("fp env: a capsule with its own state keeps it across yields, sleeps and the others never see it") {
  AEM_FOR_EACH_CORE_COUNT(cores) {
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([] {
      REQUIRE(std::fegetround() == FE_TONEAREST);
      bool done = false;
      int own_mismatches = 0;
      int shared_mismatches = 0;
      int own_rounds = 0;
      auto own = aem::spawn(
          [&] {
            // It starts from the state the core's capsules share.
            CHECK(std::fegetround() == FE_TONEAREST);
            CHECK_FALSE(flush_to_zero());
            REQUIRE(std::fesetround(FE_UPWARD) == 0);
            set_flush_to_zero(true);
            for (int i = 0; i < 200; ++i) {
              if (i % 50 == 0) aem::this_capsule::sleep_for(1ms);  // through the scheduler
              aem::this_capsule::yield();
              if (std::fegetround() != FE_UPWARD) ++own_mismatches;
#if defined(__x86_64__)
              if (!flush_to_zero()) ++own_mismatches;
#endif
              ++own_rounds;
            }
            done = true;
          },
          {.own_fp_env = true});
      REQUIRE(own);
      auto shared = aem::spawn([&] {
        while (!done) {
          if (std::fegetround() != FE_TONEAREST || flush_to_zero()) ++shared_mismatches;
          aem::this_capsule::yield();
        }
      });
      REQUIRE(shared);
      own->join();
      shared->join();
      CHECK(own_rounds == 200);
      CHECK(own_mismatches == 0);
      CHECK(shared_mismatches == 0);
      // Its changes left with it.
      CHECK(std::fegetround() == FE_TONEAREST);
      CHECK_FALSE(flush_to_zero());
    });
  }
}

TEST_CASE("fp env: capsules with their own states switching among themselves keep each its own") {
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([] {
    constexpr int kModes[] = {FE_UPWARD, FE_DOWNWARD, FE_TOWARDZERO, FE_TONEAREST};
    std::vector<int> mismatches(4, 0);
    std::vector<aem::Capsule<void>> capsules;
    for (int c = 0; c < 4; ++c) {
      auto capsule = aem::spawn(
          [&, c] {
            REQUIRE(std::fesetround(kModes[c]) == 0);
            for (int i = 0; i < 100; ++i) {
              aem::this_capsule::yield();
              if (std::fegetround() != kModes[c]) ++mismatches[c];
            }
          },
          {.own_fp_env = true});
      REQUIRE(capsule);
      capsules.push_back(std::move(*capsule));
    }
    for (auto& capsule : capsules) capsule.join();
    CHECK(mismatches == std::vector<int>(4, 0));
    CHECK(std::fegetround() == FE_TONEAREST);
  });
}

TEST_CASE("fp env: a pooled capsule reused without the option runs in the shared state again") {
  aem::Config config = aem_test::config_for(1);
  config.capsules_per_core = 2;  // so the next spawn reuses the capsule that had its own state
  aem::Runtime rt(config);
  rt.run([] {
    for (int round = 0; round < 8; ++round) {
      auto own = aem::spawn([] { REQUIRE(std::fesetround(FE_DOWNWARD) == 0); }, {.own_fp_env = true});
      REQUIRE(own);
      own->join();
      auto plain = aem::spawn([] { return std::fegetround(); });
      REQUIRE(plain);
      CHECK(plain->join() == FE_TONEAREST);
      CHECK(std::fegetround() == FE_TONEAREST);
    }
  });
}
