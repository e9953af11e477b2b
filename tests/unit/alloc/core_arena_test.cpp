// The per-core event-data arena as the runtime owns it: one arena per core, blocks freed on
// another core go home through the remote-free list, which each core drains in its loop.
#include "support/cores.hpp"

#include <aem/capsule.hpp>
#include <aem/core_arena.hpp>
#include <aem/cross_core.hpp>
#include <aem/runtime.hpp>

#include <doctest/doctest.h>

#include <cstring>
#include <set>

using namespace std::chrono_literals;

namespace {

// wait_until_drained yields until the calling core's arena has nothing in use (the loop drains
// remote frees on every turn), giving up after `turns` loop turns.
bool wait_until_drained(int turns = 100'000) {
  for (int i = 0; i < turns; ++i) {
    if (aem::this_core::arena()->stats().bytes_in_use == 0) return true;
    aem::this_capsule::sleep_for(10us);
  }
  return false;
}

}  // namespace

TEST_CASE("core arena: not available off the cores") {
  CHECK(aem::this_core::arena() == nullptr);
  auto data = aem::this_core::allocate_data(64);
  REQUIRE_FALSE(data);
  CHECK(data.error() == aem::errc::not_in_capsule);
}

TEST_CASE("core arena: each core has its own arena, configured by Config::arena") {
  AEM_FOR_EACH_CORE_COUNT(cores) {
    aem::Config config = aem_test::config_for(cores);
    config.arena.capacity = 1 << 20;
    config.arena.on_exhaustion = aem::ExhaustionPolicy::fail;
    aem::Runtime rt(config);
    rt.run([&] {
      std::set<aem::BuddyArena*> arenas;
      for (unsigned core = 0; core < cores; ++core) {
        auto arena = aem::submit(core, [] { return aem::this_core::arena(); });
        REQUIRE(arena);
        REQUIRE(*arena != nullptr);
        arenas.insert(*arena);
        auto capacity = aem::submit(core, [] { return aem::this_core::arena()->stats().capacity; });
        CHECK(*capacity == std::size_t{1} << 20);
      }
      CHECK(arenas.size() == cores);
      auto block = aem::this_core::allocate_data(100);
      REQUIRE(block);
      CHECK(block->arena() == aem::this_core::arena());
      CHECK(block->capacity() == 128);
      auto too_big = aem::this_core::allocate_data(2 << 20);  // the fail policy, over capacity
      REQUIRE_FALSE(too_big);
      CHECK(too_big.error() == aem::errc::invalid_argument);
    });
  }
}

TEST_CASE("core arena: a bad Config::arena makes start fail cleanly") {
  aem::Config config = aem_test::config_for(1);
  config.arena.capacity = 3 << 20;  // not a power of two
  aem::Runtime rt(config);
  auto started = rt.start();
  REQUIRE_FALSE(started);
  CHECK(started.error() == aem::errc::invalid_argument);
  CHECK_FALSE(rt.running());
}

TEST_CASE("core arena: a block freed on another core returns to its own core's arena") {
  AEM_FOR_EACH_CORE_COUNT(cores) {
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([&] {
      const unsigned other = cores > 1 ? 1 : 0;
      auto data = aem::this_core::allocate_data(1000);
      REQUIRE(data);
      std::memset(data->data(), 0x5a, data->size());
      const auto before = aem::this_core::arena()->stats();
      CHECK(before.bytes_in_use == 1024);
      aem::BuddyArena* home = aem::this_core::arena();
      // The receiving core checks the bytes and drops the block there.
      auto checked = aem::submit(other, [d = std::move(*data), home]() mutable {
        bool intact = d.arena() == home && d.size() == 1000;
        for (std::byte b : d.bytes()) intact = intact && b == std::byte{0x5a};
        d.reset();
        return intact;
      });
      REQUIRE(checked);
      CHECK(*checked);
      CHECK(wait_until_drained());
      const auto after = aem::this_core::arena()->stats();
      CHECK(after.bytes_in_use == 0);
      if (cores > 1) CHECK(after.remote_frees_drained == before.remote_frees_drained + 1);
    });
  }
}

TEST_CASE("core arena: the arena outlives a restart: a block freed while stopped is reclaimed") {
  aem::Runtime rt(aem_test::config_for(2));
  REQUIRE(rt.start());
  aem::EventData kept = rt.submit(1, [] { return std::move(*aem::this_core::allocate_data(4096)); }).get();
  REQUIRE(kept);
  aem::BuddyArena* arena = kept.arena();
  CHECK(rt.submit(1, [] { return aem::this_core::arena(); }).get() == arena);
  rt.stop();
  kept.reset();  // a plain thread, the runtime stopped: queued as a remote free
  REQUIRE(rt.start());
  const bool same = rt.submit(1, [arena] { return aem::this_core::arena() == arena; }).get();
  CHECK(same);
  const bool drained = rt.submit(1, [] { return wait_until_drained(); }).get();
  CHECK(drained);
  rt.stop();
}
