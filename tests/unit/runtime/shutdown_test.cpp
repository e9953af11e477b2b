#include "support/cores.hpp"
#include "support/unwind_helpers.hpp"

#include <aem/capsule.hpp>
#include <aem/fd_io.hpp>
#include <aem/runtime.hpp>
#include <aem/timer.hpp>

#include <doctest/doctest.h>

#include <array>
#include <atomic>
#include <unistd.h>

using namespace std::chrono_literals;

using aem_test::CountsDestruction;

TEST_CASE("shutdown: capsules parked when the root returns are unwound, destructors run") {
  for (unsigned cores : aem_test::kCoreCounts) {
    CAPTURE(cores);
    std::atomic<int> destroyed{0};
    std::atomic<int> started{0};
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([&, cores] {
      for (unsigned i = 0; i < 10; ++i) {
        auto c = aem::spawn(
            [&] {
              CountsDestruction guard{&destroyed};
              started.fetch_add(1);
              aem::this_capsule::sleep_for(24h);
            },
            {.core = i % cores});
        REQUIRE(c);
        c->detach();
      }
      while (started.load() < 10) aem::this_capsule::sleep_for(100us);
    });
    CHECK(destroyed.load() == 10);
  }
}

TEST_CASE("shutdown: periodic timers stop and in-flight reads are cancelled") {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  std::atomic<int> ticks{0};
  std::error_code read_error;
  aem::Runtime rt(aem_test::config_for(2));
  rt.run([&] {
    REQUIRE(aem::every(1ms, [&] { ticks.fetch_add(1); }));
    auto reader = aem::spawn(
        [&] {
          std::array<std::byte, 16> buffer{};
          read_error = aem::read(fds[0], buffer).error();  // nobody writes: only shutdown ends it
        },
        {.core = 1});
    REQUIRE(reader);
    reader->detach();
    while (ticks.load() < 3) aem::this_capsule::sleep_for(1ms);
  });
  CHECK(read_error == aem::errc::shutting_down);
  const int after_stop = ticks.load();
  CHECK(after_stop >= 3);
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST_CASE("shutdown: spawning while the runtime stops is refused") {
  aem::Runtime rt(aem_test::config_for(1));
  std::error_code refused;
  rt.run([&] {
    auto c = aem::spawn([&] {
      try {
        aem::this_capsule::sleep_for(24h);
      } catch (...) {
        // Unwinding: new work is refused, and the exception must travel on.
        refused = aem::spawn([] {}).error();
        throw;
      }
    });
    REQUIRE(c);
    c->detach();
    aem::this_capsule::yield();
  });
  CHECK(refused == aem::errc::shutting_down);
}

TEST_CASE("shutdown: stop() from a capsule requests the stop: run still returns the root's value") {
  aem::Runtime rt(aem_test::config_for(2));
  const int v = rt.run([&] {
    rt.stop();
    return 5;
  });
  CHECK(v == 5);
  CHECK_FALSE(rt.running());
}
