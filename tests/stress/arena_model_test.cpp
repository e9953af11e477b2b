// arena_model_test.cpp — BuddyArena against a reference model: millions of random operations,
// single-threaded and with frees on 1–3 other threads.
//
// The model keeps every live block's extent in an interval map (no two live blocks may
// overlap, arena blocks must lie inside the region), its id-derived fill pattern (checked on
// free), and the per-order counts the arena's stats must match. Every run ends with everything
// freed and the arena coalesced back into one free block of the whole capacity.
#include <aem/arena.hpp>
#include <aem/event_data.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

namespace {

constexpr std::size_t KiB = 1024;
constexpr std::size_t MiB = 1024 * 1024;

// Pattern bytes are a function of (id, offset); large blocks are checked on a sample so that
// a million operations stay affordable under sanitizers: the first and last 4 KiB in full and
// one word every 512 bytes in between.
constexpr std::size_t kFullCheck = 8 * KiB;

std::uint64_t pattern_word(std::uint64_t id, std::size_t offset) {
  std::uint64_t x = (id + 1) * 0x9e3779b97f4a7c15ull ^ (offset * 0xbf58476d1ce4e5b9ull);
  return x ^ (x >> 29);
}

template <typename F>
void for_each_checked_word(std::size_t size, F&& f) {
  const std::size_t words = size / 8;
  if (size <= kFullCheck) {
    for (std::size_t w = 0; w < words; ++w) f(w * 8);
  } else {
    for (std::size_t w = 0; w < 512; ++w) f(w * 8);
    for (std::size_t off = 4 * KiB; off + 8 <= size - 4 * KiB; off += 512) f(off);
    for (std::size_t w = words - 512; w < words; ++w) f(w * 8);
  }
  for (std::size_t off = words * 8; off < size; ++off) f(off);  // tail bytes, one at a time
}

void fill(std::byte* p, std::size_t size, std::uint64_t id) {
  for_each_checked_word(size, [&](std::size_t off) {
    const std::uint64_t v = pattern_word(id, off);
    if (off + 8 <= size && off % 8 == 0) std::memcpy(p + off, &v, 8);
    else p[off] = static_cast<std::byte>(v);
  });
}

bool verify(const std::byte* p, std::size_t size, std::uint64_t id) {
  bool ok = true;
  for_each_checked_word(size, [&](std::size_t off) {
    const std::uint64_t v = pattern_word(id, off);
    if (off + 8 <= size && off % 8 == 0) {
      std::uint64_t got;
      std::memcpy(&got, p + off, 8);
      ok &= got == v;
    } else {
      ok &= p[off] == static_cast<std::byte>(v);
    }
  });
  return ok;
}

// Extents of live blocks, start -> end. Thread-safe so the cross-thread variant can share it.
class Extents {
 public:
  // insert returns false if [start, end) overlaps a live extent.
  bool insert(std::uintptr_t start, std::uintptr_t end) {
    std::lock_guard lock(mutex_);
    auto next = map_.lower_bound(start);
    if (next != map_.end() && next->first < end) return false;
    if (next != map_.begin() && std::prev(next)->second > start) return false;
    map_.emplace(start, end);
    return true;
  }
  void erase(std::uintptr_t start) {
    std::lock_guard lock(mutex_);
    map_.erase(start);
  }
  std::size_t size() {
    std::lock_guard lock(mutex_);
    return map_.size();
  }

 private:
  std::mutex mutex_;
  std::map<std::uintptr_t, std::uintptr_t> map_;
};

std::size_t random_size(std::mt19937_64& rng, std::size_t capacity, bool huge) {
  const unsigned r = static_cast<unsigned>(rng() % 1000);
  std::size_t size;
  if (r < 650) size = rng() % 257;                       // 0..256
  else if (r < 900) size = 257 + rng() % (4 * KiB - 256);  // ..4 KiB
  else if (r < 990) size = 4 * KiB + rng() % (60 * KiB);   // ..64 KiB
  else if (r < 999 || rng() % 4 != 0 || !huge) size = 64 * KiB + rng() % (960 * KiB);  // ..1 MiB
  else size = capacity / 2 + rng() % capacity;  // around and above the capacity
  return size;
}

struct Block {
  std::uint64_t id = 0;
  std::byte* p = nullptr;
  std::size_t size = 0;
  std::size_t capacity = 0;
  bool in_arena = false;
  aem::EventData data;  // owns the block when non-empty, else it is a raw allocate() block
};

// check_coalesced: with hot caches the cached blocks are merged by trim() first; without them
// (eager coalescing) the arena must be fully merged as it stands.
void check_coalesced(aem::BuddyArena& arena, bool trim = true) {
  arena.drain_remote_frees();
  if (trim) arena.trim();
  const aem::ArenaStats s = arena.stats();
  CHECK(s.bytes_in_use == 0);
  CHECK(s.fallback_bytes == 0);
  CHECK(s.largest_free_block == s.capacity);
  CHECK(s.free_bytes == s.capacity);
  CHECK(s.free_blocks[s.orders - 1] == 1);
  for (unsigned k = 0; k + 1 < s.orders; ++k) {
    CHECK(s.free_blocks[k] == 0);
    CHECK(s.allocated_blocks[k] == 0);
  }
  CHECK(s.errors_detected == 0);
}

struct ModelRun {
  aem::ArenaConfig config;
  std::size_t operations = 1'000'000;
  std::uint64_t seed = 1;
  // huge_requests asks for 1 in 4000 requests to be around or above the capacity.
  bool huge_requests = true;
};

// run_model performs `operations` random allocations and frees on one thread.
void run_model(const ModelRun& run) {
  aem::BuddyArena arena{run.config};
  std::mt19937_64 rng(run.seed);
  Extents extents;
  std::vector<Block> live;
  std::array<std::size_t, aem::ArenaStats::kMaxOrders> model_counts{};
  std::size_t model_in_use = 0;
  std::uint64_t next_id = 0, failures = 0, fallbacks = 0, mismatches = 0, overlaps = 0, outside = 0;
  std::size_t target = 500;
  const auto region_order = [&](std::size_t capacity) {
    return static_cast<unsigned>(std::countr_zero(capacity / arena.min_block()));
  };

  auto free_one = [&](std::size_t i) {
    Block& b = live[i];
    if (!verify(b.p, b.size, b.id)) ++mismatches;
    extents.erase(reinterpret_cast<std::uintptr_t>(b.p));
    if (b.in_arena) {
      --model_counts[region_order(b.capacity)];
      model_in_use -= b.capacity;
    }
    if (b.data) b.data.reset();
    else REQUIRE(arena.deallocate(b.p));
    if (i + 1 != live.size()) live[i] = std::move(live.back());
    live.pop_back();
  };

  for (std::size_t op = 0; op < run.operations; ++op) {
    if (op % 100'000 == 0) target = std::size_t{1} << (4 + rng() % 10);  // 16 .. 8192 live blocks
    const bool allocate = live.empty() || (rng() % 100) < (live.size() < target ? 60u : 40u);
    if (!allocate) {
      free_one(rng() % live.size());
      continue;
    }
    const std::size_t size = random_size(rng, arena.capacity(), run.huge_requests);
    const bool as_data = rng() % 2 == 0;
    Block b;
    b.id = next_id++;
    b.size = size;
    if (as_data) {
      auto r = arena.allocate_data(size);
      if (!r) {
        const aem::ArenaStats s = arena.stats();
        if (size > arena.capacity()) CHECK(r.error() == aem::errc::invalid_argument);
        else CHECK(r.error() == aem::errc::out_of_memory);
        if (size <= arena.capacity()) CHECK(s.largest_free_block < arena.block_size(size));
        ++failures;
        continue;
      }
      b.data = std::move(*r);
      b.p = b.data.data();
      b.capacity = b.data.capacity();
    } else {
      auto r = arena.allocate(size);
      if (!r) {
        const aem::ArenaStats s = arena.stats();
        if (size > arena.capacity()) CHECK(r.error() == aem::errc::invalid_argument);
        else CHECK(r.error() == aem::errc::out_of_memory);
        if (size <= arena.capacity()) CHECK(s.largest_free_block < arena.block_size(size));
        ++failures;
        continue;
      }
      b.p = static_cast<std::byte*>(*r);
      b.capacity = size > arena.capacity() ? size : arena.block_size(size);
    }
    b.in_arena = arena.contains(b.p);
    if (b.in_arena) {
      CHECK(b.capacity == arena.block_size(size));
      if (!arena.contains(b.p + b.capacity - 1)) ++outside;
      ++model_counts[region_order(b.capacity)];
      model_in_use += b.capacity;
    } else {
      ++fallbacks;
    }
    if (reinterpret_cast<std::uintptr_t>(b.p) % 16 != 0) ++mismatches;
    if (b.capacity >= 4096 && reinterpret_cast<std::uintptr_t>(b.p) % 4096 != 0) ++mismatches;
    const auto start = reinterpret_cast<std::uintptr_t>(b.p);
    if (!extents.insert(start, start + std::max<std::size_t>(b.capacity, 1))) ++overlaps;
    fill(b.p, b.size, b.id);
    live.push_back(std::move(b));

    if (op % 4096 == 0) {
      const aem::ArenaStats s = arena.stats();
      CHECK(s.bytes_in_use == model_in_use);
      CHECK(s.bytes_in_use + s.free_bytes == s.capacity);
      for (unsigned k = 0; k < s.orders; ++k) CHECK(s.allocated_blocks[k] == model_counts[k]);
    }
  }
  CHECK(mismatches == 0);
  CHECK(overlaps == 0);
  CHECK(outside == 0);
  MESSAGE("ops=" << run.operations << " allocations=" << next_id << " failures=" << failures
                 << " fallbacks=" << fallbacks << " high_water=" << arena.stats().high_water);
  while (!live.empty()) free_one(live.size() - 1);
  CHECK(mismatches == 0);
  CHECK(extents.size() == 0);
  check_coalesced(arena, run.config.hot_cache_depth != 0);
}

}  // namespace

// The default configuration: 64 MiB heap zone, 64 B blocks, hot caches of depth 1024, fallback
// policy. Release builds default to debug off, which is what sends requests through the inline
// hot-cache paths; set here so that a debug build of the tests covers them too.
TEST_CASE("arena model: 1M random operations, default configuration (hot caches on), single block after trim") {
  ModelRun run;
  run.config.debug = false;
  run.seed = 0xdef0;
  // With 64 MiB and the fallback policy, each of those is a fresh 32-96 MiB general-heap block
  // whose pages all fault in: a minute of the run (five under ASan) for paths the other runs
  // already cover.
  run.huge_requests = false;
  REQUIRE(run.config.hot_cache_depth != 0);
  run_model(run);  // ends with trim() and checks one free block of the whole capacity
}

TEST_CASE("arena model: 1M random operations, heap zone, hot caches, fail policy") {
  ModelRun run;
  run.config.capacity = 32 * MiB;
  run.config.on_exhaustion = aem::ExhaustionPolicy::fail;
  run.config.debug = true;
  run.seed = 0x5eed;
  run_model(run);
}

TEST_CASE("arena model: 1M random operations, virtual zone, eager coalescing, fallback policy") {
  ModelRun run;
  run.config.capacity = 16 * MiB;
  run.config.min_block = 16;
  run.config.zone = aem::Zone::virtual_memory;
  run.config.release_threshold = 256 * KiB;  // every release is a TLB shootdown: keep the run affordable
  run.config.hot_cache_depth = 0;
  run.config.on_exhaustion = aem::ExhaustionPolicy::fallback;
  run.config.debug = false;
  run.seed = 0xa11c;
  run_model(run);
}

TEST_CASE("arena model: 1M random operations, small arena under constant exhaustion") {
  ModelRun run;
  run.config.capacity = 2 * MiB;
  run.config.min_block = 32;
  run.config.hot_cache_depth = 64;
  run.config.on_exhaustion = aem::ExhaustionPolicy::fallback;
  run.config.debug = true;
  run.seed = 0xf00d;
  run_model(run);
}

// Cross-thread: the owner allocates and fills blocks and hands most of them to workers, which
// verify and free them (remote frees); the owner frees the rest itself and drains.
namespace {

struct Handoff {
  std::mutex mutex;
  std::condition_variable cv;
  std::deque<Block> queue;
  bool done = false;
};

void run_cross_thread(unsigned workers, std::size_t allocations, std::uint64_t seed) {
  aem::ArenaConfig config;
  config.capacity = 16 * MiB;
  config.debug = true;
  aem::BuddyArena arena{config};
  Extents extents;
  std::vector<Handoff> handoffs(workers);
  std::atomic<std::size_t> outstanding{0};
  std::atomic<std::uint64_t> mismatches{0};
  std::atomic<std::uint64_t> free_errors{0};

  std::vector<std::thread> threads;
  for (unsigned w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] {
      Handoff& h = handoffs[w];
      std::mt19937_64 rng(seed + w + 1);
      std::vector<Block> held;  // hold some blocks for a while so frees interleave
      for (;;) {
        std::unique_lock lock(h.mutex);
        h.cv.wait(lock, [&] { return h.done || !h.queue.empty(); });
        if (h.queue.empty() && h.done) break;
        held.push_back(std::move(h.queue.front()));
        h.queue.pop_front();
        lock.unlock();
        while (!held.empty() && (held.size() > 32 || rng() % 4 == 0)) {
          const std::size_t i = rng() % held.size();
          Block& b = held[i];
          if (!verify(b.p, b.size, b.id)) mismatches.fetch_add(1);
          extents.erase(reinterpret_cast<std::uintptr_t>(b.p));
          if (b.data) b.data.reset();
          else if (!arena.deallocate(b.p)) free_errors.fetch_add(1);
          held[i] = std::move(held.back());
          held.pop_back();
          outstanding.fetch_sub(1);
        }
      }
      for (Block& b : held) {
        if (!verify(b.p, b.size, b.id)) mismatches.fetch_add(1);
        extents.erase(reinterpret_cast<std::uintptr_t>(b.p));
        if (b.data) b.data.reset();
        else if (!arena.deallocate(b.p)) free_errors.fetch_add(1);
        outstanding.fetch_sub(1);
      }
    });
  }

  std::mt19937_64 rng(seed);
  std::vector<Block> local;
  std::uint64_t overlaps = 0;
  for (std::size_t i = 0; i < allocations; ++i) {
    const std::size_t size = rng() % 100 < 95 ? rng() % 4097 : 4 * KiB + rng() % (60 * KiB);
    Block b;
    b.id = i;
    b.size = size;
    if (rng() % 2 == 0) {
      auto r = arena.allocate_data(size);
      REQUIRE(r);
      b.data = std::move(*r);
      b.p = b.data.data();
      b.capacity = b.data.capacity();
    } else {
      auto r = arena.allocate(size);
      REQUIRE(r);
      b.p = static_cast<std::byte*>(*r);
      b.capacity = arena.block_size(size);
    }
    const auto start = reinterpret_cast<std::uintptr_t>(b.p);
    if (!extents.insert(start, start + b.capacity)) ++overlaps;
    fill(b.p, b.size, b.id);
    if (rng() % 8 == 0) {  // freed here, by the owner
      local.push_back(std::move(b));
      if (local.size() > 16) {
        Block& f = local[rng() % local.size()];
        if (!verify(f.p, f.size, f.id)) mismatches.fetch_add(1);
        extents.erase(reinterpret_cast<std::uintptr_t>(f.p));
        if (f.data) f.data.reset();
        else REQUIRE(arena.deallocate(f.p));
        f = std::move(local.back());
        local.pop_back();
      }
    } else {
      Handoff& h = handoffs[rng() % workers];
      outstanding.fetch_add(1);
      {
        std::lock_guard lock(h.mutex);
        h.queue.push_back(std::move(b));
      }
      h.cv.notify_one();
    }
    if (rng() % 64 == 0) arena.drain_remote_frees();
    while (outstanding.load() > 4096) {  // back-pressure keeps the live set bounded
      arena.drain_remote_frees();
      std::this_thread::yield();
    }
  }
  for (Handoff& h : handoffs) {
    {
      std::lock_guard lock(h.mutex);
      h.done = true;
    }
    h.cv.notify_one();
  }
  for (std::thread& t : threads) t.join();
  for (Block& b : local) {
    if (!verify(b.p, b.size, b.id)) mismatches.fetch_add(1);
    extents.erase(reinterpret_cast<std::uintptr_t>(b.p));
    if (b.data) b.data.reset();
    else REQUIRE(arena.deallocate(b.p));
  }
  local.clear();
  CHECK(overlaps == 0);
  CHECK(mismatches.load() == 0);
  CHECK(free_errors.load() == 0);
  CHECK(extents.size() == 0);
  arena.drain_remote_frees();
  const aem::ArenaStats s = arena.stats();
  MESSAGE("workers=" << workers << " remote frees drained=" << s.remote_frees_drained
                     << " fallbacks=" << s.fallback_count << " high_water=" << s.high_water);
  CHECK(s.remote_frees_drained > allocations / 2);
  check_coalesced(arena);
}

}  // namespace

TEST_CASE("arena model: cross-thread frees from 1, 2 and 3 threads end coalesced") {
  for (unsigned workers = 1; workers <= 3; ++workers) {
    CAPTURE(workers);
    run_cross_thread(workers, 200'000, 0xc0ffee + workers);
  }
}
