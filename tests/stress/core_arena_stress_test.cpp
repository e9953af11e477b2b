// The arena model across cores: a million allocations of random sizes spread over the cores, each
// block filled with a pattern and freed either by its own core or by a capsule on another core. No
// two live blocks may overlap, no pattern may change, and at the end every core's arena is
// one free block of its full capacity again.
#include "support/cores.hpp"

#include <aem/capsule.hpp>
#include <aem/core_arena.hpp>
#include <aem/cross_core.hpp>
#include <aem/runtime.hpp>
#include <aem/wait_group.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <random>

namespace {

// A million in the normal build; sanitizers make each operation ~20 times dearer, and the
// normal build already covers the count.
#if defined(AEM_SANITIZE_BUILD)
constexpr std::size_t kOperations = 100'000;
#else
constexpr std::size_t kOperations = 1'000'000;
#endif

// LiveBlocks records every live block's extent, across cores, to catch overlaps.
class LiveBlocks {
 public:
  bool insert(const std::byte* p, std::size_t capacity) {
    const auto start = reinterpret_cast<std::uintptr_t>(p);
    std::lock_guard lock(mutex_);
    auto next = extents_.lower_bound(start);
    if (next != extents_.end() && next->first < start + capacity) return false;
    if (next != extents_.begin() && std::prev(next)->second > start) return false;
    extents_.emplace(start, start + capacity);
    return true;
  }
  void erase(const std::byte* p) {
    std::lock_guard lock(mutex_);
    extents_.erase(reinterpret_cast<std::uintptr_t>(p));
  }
  std::size_t size() {
    std::lock_guard lock(mutex_);
    return extents_.size();
  }

 private:
  std::mutex mutex_;
  std::map<std::uintptr_t, std::uintptr_t> extents_;
};

void fill(aem::EventData& d, std::uint64_t id) {
  for (std::size_t i = 0; i < d.size(); ++i) d.data()[i] = static_cast<std::byte>((id * 131 + i) & 0xff);
}

bool intact(const aem::EventData& d, std::uint64_t id) {
  for (std::size_t i = 0; i < d.size(); ++i) {
    if (d.data()[i] != static_cast<std::byte>((id * 131 + i) & 0xff)) return false;
  }
  return true;
}

struct Shared {
  LiveBlocks live;
  std::atomic<std::uint64_t> overlaps{0};
  std::atomic<std::uint64_t> corrupted{0};
  std::atomic<std::uint64_t> failures{0};
  std::atomic<std::uint64_t> remote{0};
};

// release checks a block and frees it on the calling core.
void release(Shared& shared, aem::EventData& d, std::uint64_t id) {
  if (!intact(d, id)) shared.corrupted.fetch_add(1);
  shared.live.erase(d.data());
  d.reset();
}

// churn allocates `operations` blocks on the calling core; about half are freed by a capsule on
// another core (a remote free), the rest locally in random order. The live set stays bounded.
void churn(Shared& shared, std::size_t operations, std::uint64_t seed) {
  const unsigned cores = aem::this_core::count();
  std::mt19937_64 rng(seed);
  std::vector<std::pair<aem::EventData, std::uint64_t>> held;
  aem::WaitGroup in_flight;
  std::atomic<int> posted_live{0};  // bounds the blocks travelling to other cores
  for (std::size_t i = 0; i < operations; ++i) {
    const std::size_t size = rng() % 100 < 95 ? rng() % 2049 : 2048 + rng() % (30 << 10);
    auto data = aem::this_core::allocate_data(size);
    if (!data) {
      shared.failures.fetch_add(1);
      continue;
    }
    if (!shared.live.insert(data->data(), data->capacity())) shared.overlaps.fetch_add(1);
    const std::uint64_t id = seed * kOperations + i;
    fill(*data, id);
    if (cores > 1 && rng() % 2 == 0) {
      const unsigned target = (aem::this_core::id() + 1 + static_cast<unsigned>(rng() % (cores - 1))) % cores;
      while (posted_live.load() >= 256) aem::this_capsule::yield();
      in_flight.add(1);
      posted_live.fetch_add(1);
      auto posted = aem::post(target, [&shared, &in_flight, &posted_live, d = std::move(*data), id]() mutable {
        release(shared, d, id);
        shared.remote.fetch_add(1);
        posted_live.fetch_sub(1);
        in_flight.done();
      });
      if (!posted) {
        shared.failures.fetch_add(1);
        posted_live.fetch_sub(1);
        in_flight.done();
      }
    } else {
      held.emplace_back(std::move(*data), id);
      if (held.size() > 256) {
        auto& victim = held[rng() % held.size()];
        release(shared, victim.first, victim.second);
        victim = std::move(held.back());
        held.pop_back();
      }
    }
    if (i % 512 == 0) aem::this_capsule::yield();  // let the other side's capsules run
  }
  for (auto& [d, id] : held) release(shared, d, id);
  in_flight.wait();
}

}  // namespace

TEST_CASE("core arena model: 1M operations with cross-core frees end coalesced") {
  for (unsigned cores : {1u, 2u, 4u}) {
    CAPTURE(cores);
    aem::Config config = aem_test::config_for(cores);
    config.arena.capacity = 32 << 20;
    config.arena.on_exhaustion = aem::ExhaustionPolicy::fail;  // an exhaustion would be a failure
    aem::Runtime rt(config);
    Shared shared;
    const std::size_t per_core = kOperations / cores;
    rt.run([&] {
      aem::WaitGroup done;
      for (unsigned core = 0; core < cores; ++core) {
        done.add(1);
        auto posted = aem::post(core, [&, core] {
          churn(shared, per_core, 0x5eed + core);
          done.done();
        });
        REQUIRE(posted);
      }
      done.wait();
      // Every block is back: each core drains what others freed into it, merges its hot cache
      // and must then hold one free block of its whole capacity.
      for (unsigned core = 0; core < cores; ++core) {
        auto stats = aem::submit(core, [] {
          aem::BuddyArena* arena = aem::this_core::arena();
          arena->drain_remote_frees();
          arena->trim();
          return arena->stats();
        });
        REQUIRE(stats);
        CAPTURE(core);
        CHECK(stats->bytes_in_use == 0);
        CHECK(stats->largest_free_block == stats->capacity);
        CHECK(stats->free_blocks[stats->orders - 1] == 1);
        CHECK(stats->fallback_count == 0);
        CHECK(stats->errors_detected == 0);
        if (cores > 1) CHECK(stats->remote_frees_drained > 0);
      }
    });
    CHECK(shared.overlaps.load() == 0);
    CHECK(shared.corrupted.load() == 0);
    CHECK(shared.failures.load() == 0);
    CHECK(shared.live.size() == 0);
    if (cores > 1) CHECK(shared.remote.load() > kOperations / 4);
  }
}
