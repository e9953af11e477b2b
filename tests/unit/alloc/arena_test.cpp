// arena_test.cpp — BuddyArena and EventData edge cases.
#include <aem/arena.hpp>
#include <aem/event_data.hpp>

#include "alloc/general.hpp"

#include <doctest/doctest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <vector>

namespace {

constexpr std::size_t KiB = 1024;
constexpr std::size_t MiB = 1024 * 1024;

bool aligned(const void* p, std::size_t a) { return reinterpret_cast<std::uintptr_t>(p) % a == 0; }

aem::ArenaConfig small_config(std::size_t capacity = 64 * KiB, std::size_t min_block = 64) {
  aem::ArenaConfig c;
  c.capacity = capacity;
  c.min_block = min_block;
  c.debug = true;
  return c;
}

// fully_coalesced: nothing allocated, no cached blocks, one free block of the whole capacity.
void check_fully_coalesced(aem::BuddyArena& arena) {
  arena.drain_remote_frees();
  arena.trim();
  const aem::ArenaStats s = arena.stats();
  CHECK(s.bytes_in_use == 0);
  CHECK(s.largest_free_block == s.capacity);
  CHECK(s.free_bytes == s.capacity);
  for (unsigned k = 0; k < s.orders; ++k) {
    CHECK(s.allocated_blocks[k] == 0);
    CHECK(s.cached_blocks[k] == 0);
    CHECK(s.free_blocks[k] == (k + 1 == s.orders ? 1u : 0u));
  }
}

std::size_t resident_pages(const void* p, std::size_t bytes) {
  const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> vec((bytes + page - 1) / page);
  REQUIRE(mincore(const_cast<void*>(p), bytes, vec.data()) == 0);
  std::size_t n = 0;
  for (unsigned char v : vec) n += v & 1;
  return n;
}

}  // namespace

TEST_CASE("arena: bad configurations throw std::invalid_argument, validate() reports them") {
  auto bad = [](std::size_t capacity, std::size_t min_block, std::uint32_t depth = 8) {
    aem::ArenaConfig c;
    c.capacity = capacity;
    c.min_block = min_block;
    c.hot_cache_depth = depth;
    CHECK(aem::BuddyArena::validate(c).error() == aem::errc::invalid_argument);
    CHECK_THROWS_AS(aem::BuddyArena{c}, std::invalid_argument);
  };
  bad(64 * KiB, 0);
  bad(64 * KiB, 8);             // too small for the free-list links
  bad(64 * KiB, 48);            // not a power of two
  bad(3 * 64 * KiB, 64);        // not a power of two
  bad(32, 64);                  // smaller than min_block
  bad(std::size_t{1} << 40, 16);  // 2^36 min blocks: more than 32 orders
  bad(64 * KiB, 64, 70000);
  aem::ArenaConfig good = small_config();
  CHECK(aem::BuddyArena::validate(good).has_value());
  aem::BuddyArena arena{good};
  CHECK(arena.capacity() == 64 * KiB);
  check_fully_coalesced(arena);
}

TEST_CASE("arena: default configuration is 64 MiB with 64 B blocks, heap zone pre-faulted") {
  aem::BuddyArena arena;
  CHECK(arena.capacity() == 64 * MiB);
  CHECK(arena.min_block() == 64);
  const aem::ArenaStats s = arena.stats();
  CHECK(s.orders == 21);
  auto p = arena.allocate(100);
  REQUIRE(p);
  const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  CHECK(aligned(*p, page));  // the first block of a fresh arena is the region's start
  CHECK(resident_pages(*p, 64 * MiB) == 64 * MiB / page);
  REQUIRE(arena.deallocate(*p));
  check_fully_coalesced(arena);
}

TEST_CASE("arena: size 0 gets a distinct minimum block") {
  aem::BuddyArena arena{small_config()};
  auto a = arena.allocate(0);
  auto b = arena.allocate(0);
  REQUIRE(a);
  REQUIRE(b);
  CHECK(*a != *b);
  CHECK(arena.contains(*a));
  CHECK(arena.stats().bytes_in_use == 128);
  auto d = arena.allocate_data(0);
  REQUIRE(d);
  CHECK(static_cast<bool>(*d));
  CHECK(d->size() == 0);
  CHECK(d->capacity() == 64);
  CHECK(d->bytes().empty());
  REQUIRE(arena.deallocate(*a));
  REQUIRE(arena.deallocate(*b));
  d->reset();
  CHECK(!*d);
  check_fully_coalesced(arena);
}

TEST_CASE("arena: exactly the minimum and the maximum block") {
  aem::ArenaConfig c = small_config();
  c.on_exhaustion = aem::ExhaustionPolicy::fail;
  aem::BuddyArena arena{c};
  CHECK(arena.block_size(1) == 64);
  CHECK(arena.block_size(64) == 64);
  CHECK(arena.block_size(65) == 128);
  CHECK(arena.block_size(64 * KiB) == 64 * KiB);
  CHECK(arena.block_size(64 * KiB + 1) == 0);

  auto d = arena.allocate_data(64);
  REQUIRE(d);
  CHECK(d->capacity() == 64);
  d->reset();

  auto whole = arena.allocate_data(64 * KiB);
  REQUIRE(whole);
  CHECK(whole->capacity() == 64 * KiB);
  CHECK(arena.contains(whole->data()));
  CHECK(arena.contains(whole->data() + 64 * KiB - 1));
  CHECK(!arena.contains(whole->data() + 64 * KiB));
  std::memset(whole->data(), 0xab, whole->size());
  CHECK(arena.stats().largest_free_block == 0);
  CHECK(arena.allocate(0).error() == aem::errc::out_of_memory);
  whole->reset();
  check_fully_coalesced(arena);
}

TEST_CASE("arena: size > capacity is the general heap under fallback, invalid_argument under fail") {
  aem::ArenaConfig c = small_config();
  std::vector<aem::MemoryPressure> seen;
  c.on_pressure = [&](const aem::MemoryPressure& p) { seen.push_back(p); };
  {
    aem::BuddyArena arena{c};
    auto d = arena.allocate_data(64 * KiB + 1);
    REQUIRE(d);
    CHECK(!arena.contains(d->data()));
    CHECK(d->size() == 64 * KiB + 1);
    CHECK(d->capacity() == 64 * KiB + 1);
    CHECK(aligned(d->data(), 4096));
    std::memset(d->data(), 1, d->size());
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].oversized);
    CHECK(seen[0].requested == 64 * KiB + 1);
    CHECK(seen[0].capacity == 64 * KiB);
    aem::ArenaStats s = arena.stats();
    CHECK(s.fallback_count == 1);
    CHECK(s.oversize_count == 1);
    CHECK(s.fallback_bytes >= 64 * KiB + 1);
    CHECK(s.exhaustion_count == 0);
    d->reset();
    CHECK(arena.stats().fallback_bytes == 0);
    auto raw = arena.allocate(1 * MiB);
    REQUIRE(raw);
    CHECK(arena.deallocate(*raw));
    check_fully_coalesced(arena);
  }
  seen.clear();
  c.on_exhaustion = aem::ExhaustionPolicy::fail;
  aem::BuddyArena arena{c};
  CHECK(arena.allocate(64 * KiB + 1).error() == aem::errc::invalid_argument);
  CHECK(arena.allocate_data(SIZE_MAX).error() == aem::errc::invalid_argument);
  CHECK(seen.empty());
  CHECK(arena.stats().fallback_count == 0);
}

TEST_CASE("arena: fallback serves SIZE_MAX-ish requests with out_of_memory, never a crash") {
  aem::BuddyArena arena{small_config()};
  CHECK(arena.allocate(SIZE_MAX / 2).error() == aem::errc::out_of_memory);
  check_fully_coalesced(arena);
}

TEST_CASE("arena: blocks are 16-byte aligned, page-aligned from 4096 bytes") {
  aem::ArenaConfig c = small_config(4 * MiB, 16);
  aem::BuddyArena arena{c};
  std::vector<void*> blocks;
  for (std::size_t size : {std::size_t{1}, std::size_t{15}, std::size_t{16}, std::size_t{17}, std::size_t{33},
                           std::size_t{100}, std::size_t{1000}, std::size_t{4095}, std::size_t{4096},
                           std::size_t{4097}, std::size_t{10000}, std::size_t{65536}, std::size_t{1} << 20}) {
    for (int i = 0; i < 3; ++i) {
      auto p = arena.allocate(size);
      REQUIRE(p);
      CHECK(aligned(*p, 16));
      if (size >= 4096) CHECK(aligned(*p, 4096));
      blocks.push_back(*p);
    }
  }
  for (void* p : blocks) REQUIRE(arena.deallocate(p));
  check_fully_coalesced(arena);
}

TEST_CASE("arena: exhaustion under the fallback policy is counted and reported") {
  aem::ArenaConfig c = small_config();
  int calls = 0;
  aem::MemoryPressure last;
  c.on_pressure = [&](const aem::MemoryPressure& p) {
    ++calls;
    last = p;
  };
  aem::BuddyArena arena{c};
  std::vector<aem::EventData> live;
  for (int i = 0; i < 16; ++i) {
    auto d = arena.allocate_data(4000);
    REQUIRE(d);
    CHECK(arena.contains(d->data()));
    live.push_back(std::move(*d));
  }
  CHECK(calls == 0);
  auto extra = arena.allocate_data(100);
  REQUIRE(extra);
  CHECK(!arena.contains(extra->data()));
  CHECK(extra->capacity() == 128);
  CHECK(aligned(extra->data(), 16));
  std::memset(extra->data(), 7, extra->capacity());
  CHECK(calls == 1);
  CHECK(last.requested == 100);
  CHECK(last.in_use == 64 * KiB);
  CHECK(last.capacity == 64 * KiB);
  CHECK(!last.oversized);
  CHECK(last.policy == aem::ExhaustionPolicy::fallback);
  auto page = arena.allocate_data(4096);
  REQUIRE(page);
  CHECK(aligned(page->data(), 4096));
  aem::ArenaStats s = arena.stats();
  CHECK(s.fallback_count == 2);
  CHECK(s.exhaustion_count == 2);
  CHECK(s.oversize_count == 0);
  CHECK(s.fallback_bytes >= 128 + 4096);
  CHECK(calls == 2);
  // Fallback blocks go back through the same paths, on this thread and on others.
  extra->reset();
  std::thread([&] { page->reset(); }).join();
  CHECK(arena.stats().fallback_bytes == 0);
  live.clear();
  check_fully_coalesced(arena);
}

TEST_CASE("arena: exhaustion under the fail policy returns out_of_memory") {
  aem::ArenaConfig c = small_config();
  c.on_exhaustion = aem::ExhaustionPolicy::fail;
  int calls = 0;
  c.on_pressure = [&](const aem::MemoryPressure& p) {
    ++calls;
    CHECK(p.policy == aem::ExhaustionPolicy::fail);
  };
  aem::BuddyArena arena{c};
  auto big = arena.allocate(32 * KiB);
  auto mid = arena.allocate(16 * KiB);
  REQUIRE(big);
  REQUIRE(mid);
  CHECK(arena.allocate(32 * KiB).error() == aem::errc::out_of_memory);
  CHECK(calls == 1);
  auto fits = arena.allocate(16 * KiB);  // exactly the last free block
  REQUIRE(fits);
  CHECK(arena.allocate(1).error() == aem::errc::out_of_memory);
  CHECK(arena.stats().exhaustion_count == 2);
  CHECK(arena.stats().fallback_count == 0);
  REQUIRE(arena.deallocate(*big));
  REQUIRE(arena.deallocate(*mid));
  REQUIRE(arena.deallocate(*fits));
  check_fully_coalesced(arena);
}

TEST_CASE("arena: hot-cached blocks are coalesced before exhaustion is declared") {
  aem::ArenaConfig c = small_config();
  c.on_exhaustion = aem::ExhaustionPolicy::fail;
  c.hot_cache_depth = 8;
  aem::BuddyArena arena{c};
  std::vector<void*> small;
  for (int i = 0; i < 64; ++i) small.push_back(*arena.allocate(64));
  for (void* p : small) REQUIRE(arena.deallocate(p));
  CHECK(arena.stats().cached_blocks[0] == 8 + 1);  // the list's depth, and the block freed last
  auto whole = arena.allocate(64 * KiB);  // needs the cached blocks merged back
  REQUIRE(whole);
  CHECK(arena.stats().exhaustion_count == 0);
  REQUIRE(arena.deallocate(*whole));
  check_fully_coalesced(arena);
}

TEST_CASE("arena: the block freed last is served first, counted as cached, and caught on a double free") {
  aem::ArenaConfig c = small_config();
  c.debug = false;  // the inline hot-cache paths
  aem::BuddyArena arena{c};
  void* a = *arena.allocate(64);
  void* b = *arena.allocate(64);
  void* big = *arena.allocate(1000);
  REQUIRE(arena.deallocate(a));
  REQUIRE(arena.deallocate(b));    // b is the front, a moved to the order-0 list
  REQUIRE(arena.deallocate(big));  // big is the front, b moved to the list
  aem::ArenaStats s = arena.stats();
  CHECK(s.cached_blocks[0] == 2);
  CHECK(s.cached_blocks[4] == 1);
  CHECK(s.bytes_in_use == 0);
  CHECK(s.largest_free_block >= 1024);
  CHECK(arena.deallocate(big).error() == aem::errc::double_free);
  CHECK(arena.deallocate(b).error() == aem::errc::double_free);
  CHECK(arena.deallocate(static_cast<char*>(big) + 64).error() == aem::errc::double_free);  // inside a free block
#if defined(AEM_ARENA_ASAN)
  CHECK(__asan_region_is_poisoned(big, 1024) == big);  // the front keeps no links: all closed
#endif
  CHECK(*arena.allocate(1000) == big);
  CHECK(*arena.allocate(64) == b);
  REQUIRE(arena.deallocate(b));
  CHECK(*arena.allocate(64) == b);  // the front again
  CHECK(*arena.allocate(64) == a);
  REQUIRE(arena.deallocate(a));
  REQUIRE(arena.deallocate(b));
  REQUIRE(arena.deallocate(big));
  CHECK(arena.stats().errors_detected == 3);
  check_fully_coalesced(arena);  // trim() merges the front too
}

TEST_CASE("arena: a full hot cache keeps the front and stacks other orders' frees") {
  aem::ArenaConfig c = small_config();
  c.debug = false;  // the inline hot-cache paths
  c.hot_cache_depth = 2;
  aem::BuddyArena arena{c};
  void* a = *arena.allocate(64);
  void* b = *arena.allocate(64);
  void* front = *arena.allocate(64);
  void* big = *arena.allocate(1000);
  REQUIRE(arena.deallocate(a));
  REQUIRE(arena.deallocate(b));
  REQUIRE(arena.deallocate(front));  // order 0's stack is now full, `front` is the front
  REQUIRE(arena.deallocate(big));    // stacked on order 4 while the front stays
  aem::ArenaStats s = arena.stats();
  CHECK(s.cached_blocks[0] == 3);
  CHECK(s.cached_blocks[4] == 1);
  CHECK(s.free_blocks[4] == 0);  // not coalesced
  CHECK(s.bytes_in_use == 0);
  CHECK(arena.deallocate(big).error() == aem::errc::double_free);
#if defined(AEM_ARENA_ASAN)
  // Stacked blocks carry no links: closed from their first byte.
  CHECK(__asan_region_is_poisoned(big, 1024) == big);
  CHECK(__asan_region_is_poisoned(a, 64) == a);
#endif
  CHECK(*arena.allocate(64) == front);
  CHECK(*arena.allocate(1000) == big);
  CHECK(*arena.allocate(64) == b);
  CHECK(*arena.allocate(64) == a);
  void* fresh = *arena.allocate(64);  // the caches are empty: split from the free lists
  CHECK(arena.stats().cached_blocks[0] == 0);
  for (void* p : {a, b, front, big, fresh}) REQUIRE(arena.deallocate(p));
  CHECK(arena.stats().errors_detected == 1);
  check_fully_coalesced(arena);
}

TEST_CASE("arena: a larger cached block is split before the caches are trimmed") {
  aem::ArenaConfig c = small_config();
  c.on_exhaustion = aem::ExhaustionPolicy::fail;
  aem::BuddyArena arena{c};
  std::vector<void*> pages;
  for (int i = 0; i < 16; ++i) pages.push_back(*arena.allocate(4096));
  REQUIRE(arena.deallocate(pages[3]));  // cached, not coalesced
  CHECK(arena.stats().cached_blocks[6] == 1);
  CHECK(arena.stats().largest_free_block == 4096);
  auto small = arena.allocate(100);  // no free list can serve it: the cached page is split
  REQUIRE(small);
  CHECK(*small == pages[3]);
  const aem::ArenaStats s = arena.stats();
  CHECK(s.cached_blocks[6] == 0);
  CHECK(s.allocated_blocks[1] == 1);
  CHECK(s.free_blocks[1] == 1);
  CHECK(s.free_blocks[5] == 1);
  CHECK(s.exhaustion_count == 0);
  REQUIRE(arena.deallocate(*small));
  for (int i = 0; i < 16; ++i) {
    if (i != 3) REQUIRE(arena.deallocate(pages[static_cast<std::size_t>(i)]));
  }
  check_fully_coalesced(arena);
}

TEST_CASE("arena: the pressure callback can free blocks and the request is retried") {
  aem::ArenaConfig c = small_config();
  std::vector<aem::EventData> cache;
  c.on_pressure = [&](const aem::MemoryPressure&) { cache.clear(); };
  aem::BuddyArena arena{c};
  for (int i = 0; i < 4; ++i) cache.push_back(std::move(*arena.allocate_data(16 * KiB)));
  auto d = arena.allocate_data(1000);
  REQUIRE(d);
  CHECK(arena.contains(d->data()));
  CHECK(arena.stats().fallback_count == 0);
  CHECK(arena.stats().exhaustion_count == 1);
  d->reset();
  check_fully_coalesced(arena);
}

TEST_CASE("arena: double free and foreign pointers are errors and leave the arena intact") {
  aem::BuddyArena arena{small_config()};
  auto a = arena.allocate(100);
  auto b = arena.allocate(1000);
  REQUIRE(a);
  REQUIRE(b);
  auto* pa = static_cast<std::byte*>(*a);
  auto* pb = static_cast<std::byte*>(*b);

  CHECK(arena.deallocate(pb + 64).error() == aem::errc::foreign_pointer);   // interior of a live block
  CHECK(arena.deallocate(pb + 3).error() == aem::errc::foreign_pointer);    // misaligned
  int on_stack = 0;
  CHECK(arena.deallocate(&on_stack).error() == aem::errc::foreign_pointer);  // outside, not fallback
  static int in_data = 0;
  CHECK(arena.deallocate(&in_data).error() == aem::errc::foreign_pointer);
  void* from_malloc = aem::detail::general_alloc(64);  // general-heap memory, but not this arena's
  CHECK(arena.deallocate(from_malloc).error() == aem::errc::foreign_pointer);
  aem::detail::general_free(from_malloc);
  CHECK(arena.deallocate(nullptr).has_value());

  REQUIRE(arena.deallocate(pa));
  CHECK(arena.deallocate(pa).error() == aem::errc::double_free);  // cached
  arena.trim();
  CHECK(arena.deallocate(pa).error() == aem::errc::double_free);  // coalesced into a free block
  REQUIRE(arena.deallocate(pb));
  arena.trim();
  CHECK(arena.deallocate(pb).error() == aem::errc::double_free);
  CHECK(arena.deallocate(pb + 512).error() == aem::errc::double_free);  // inside free memory
  CHECK(arena.stats().errors_detected == 9);
  check_fully_coalesced(arena);

  // The arena still works normally afterwards.
  std::vector<void*> blocks;
  for (int i = 0; i < 100; ++i) blocks.push_back(*arena.allocate(static_cast<std::size_t>(i) * 7));
  for (void* p : blocks) REQUIRE(arena.deallocate(p));
  check_fully_coalesced(arena);
}

TEST_CASE("arena: double free of a fallback block is detected, debug mode or not") {
  for (bool debug : {true, false}) {
    aem::ArenaConfig c = small_config();
    c.debug = debug;
    aem::BuddyArena arena{c};
    auto big = arena.allocate(1 * MiB);
    REQUIRE(big);
    REQUIRE(arena.deallocate(*big));
    CHECK(arena.deallocate(*big).error() == aem::errc::double_free);
    int on_stack = 0;
    CHECK(arena.deallocate(&on_stack).error() == aem::errc::foreign_pointer);
    CHECK(arena.stats().errors_detected == 2);
  }
}

TEST_CASE("arena: EventData reports a bad free through on_error and stderr, never crashes") {
  aem::ArenaConfig c = small_config();
  std::vector<std::pair<std::error_code, const void*>> errors;
  c.on_error = [&](std::error_code e, const void* p) { errors.emplace_back(e, p); };
  aem::BuddyArena arena{c};
  {
    auto d = arena.allocate_data(200);
    REQUIRE(d);
    void* p = d->data();
    REQUIRE(arena.deallocate(p));  // behind the EventData's back
    d->reset();                    // now a double free
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].first == aem::errc::double_free);
    CHECK(errors[0].second == p);
    CHECK(!*d);
  }
  {
    auto d = arena.allocate_data(200);
    std::byte* p = d->release();
    auto e = arena.allocate_data(5000);
    REQUIRE(arena.deallocate(p));
    REQUIRE(arena.deallocate(e->data()));
    // e's destructor frees a block that is already free (in the hot cache).
  }
  REQUIRE(errors.size() == 2);
  CHECK(errors[1].first == aem::errc::double_free);
  CHECK(arena.stats().errors_detected == 2);
  check_fully_coalesced(arena);
}

TEST_CASE("arena: the virtual zone gives the pages of large coalesced blocks back") {
  aem::ArenaConfig c = small_config(16 * MiB, 64);
  c.zone = aem::Zone::virtual_memory;
  c.release_threshold = 64 * KiB;
  aem::BuddyArena arena{c};
  const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  auto d = arena.allocate_data(1 * MiB);
  REQUIRE(d);
  CHECK(aligned(d->data(), page));
  CHECK(resident_pages(d->data(), 1 * MiB) <= 1);  // reserved, not yet touched
  std::memset(d->data(), 0x5a, d->size());
  CHECK(resident_pages(d->data(), 1 * MiB) == 1 * MiB / page);
  std::byte* p = d->data();
  d->reset();
  const aem::ArenaStats s = arena.stats();
  CHECK(s.release_calls >= 1);
  CHECK(s.released_bytes >= 1 * MiB - page);
  CHECK(resident_pages(p + page, 1 * MiB - page) == 0);
  // Small frees below the threshold do not call madvise.
  const std::uint64_t calls = s.release_calls;
  auto small = arena.allocate(100);
  auto small2 = arena.allocate(5000);
  CHECK(arena.stats().release_calls == calls);
  REQUIRE(arena.deallocate(*small));
  REQUIRE(arena.deallocate(*small2));
  arena.trim();
  CHECK(arena.stats().release_calls > calls);
  check_fully_coalesced(arena);
}

TEST_CASE("arena: EventData is move-only and frees exactly once") {
  static_assert(!std::is_copy_constructible_v<aem::EventData>);
  static_assert(!std::is_copy_assignable_v<aem::EventData>);
  static_assert(std::is_nothrow_move_constructible_v<aem::EventData>);
  static_assert(std::is_nothrow_move_assignable_v<aem::EventData>);
  aem::ArenaConfig c = small_config();
  c.hot_cache_depth = 0;
  aem::BuddyArena arena{c};
  aem::EventData empty;
  CHECK(!empty);
  CHECK(empty.data() == nullptr);
  CHECK(empty.size() == 0);
  empty.reset();  // no-op

  auto r = arena.allocate_data(300);
  REQUIRE(r);
  aem::EventData a = std::move(*r);
  CHECK(!*r);
  CHECK(a.size() == 300);
  CHECK(a.capacity() == 512);
  CHECK(a.arena() == &arena);
  std::byte* p = a.data();
  aem::EventData b{std::move(a)};
  CHECK(!a);
  CHECK(b.data() == p);
  CHECK(b.bytes().size() == 300);
  CHECK(arena.stats().bytes_in_use == 512);

  auto other = arena.allocate_data(64);
  b = std::move(*other);  // frees b's old block
  CHECK(arena.stats().bytes_in_use == 64);
  aem::EventData& alias = b;
  b = std::move(alias);  // self-move keeps the block
  CHECK(b);
  CHECK(arena.stats().bytes_in_use == 64);
  b.reset();
  CHECK(arena.stats().bytes_in_use == 0);
  CHECK(arena.stats().errors_detected == 0);
  check_fully_coalesced(arena);
}

TEST_CASE("arena: frees from other threads wait on the remote list until the owner drains") {
  aem::BuddyArena arena{small_config(1 * MiB)};
  std::vector<aem::EventData> blocks;
  std::vector<void*> raw;
  for (int i = 0; i < 50; ++i) blocks.push_back(std::move(*arena.allocate_data(100)));
  for (int i = 0; i < 50; ++i) raw.push_back(*arena.allocate(3000));
  std::thread t([&] {
    CHECK(!arena.is_owner_thread());
    blocks.clear();
    for (void* p : raw) CHECK(arena.deallocate(p));
    CHECK(arena.deallocate(raw[0]).error() == aem::errc::double_free);  // pending remote
    CHECK(arena.drain_remote_frees() == 0);  // not the owner: ignored
  });
  t.join();
  CHECK(arena.is_owner_thread());
  CHECK(arena.stats().bytes_in_use == 50 * 128 + 50 * 4096);  // still pending
  CHECK(arena.drain_remote_frees() == 100);
  CHECK(arena.stats().remote_frees_drained == 100);
  CHECK(arena.stats().bytes_in_use == 0);

  // allocate() drains by itself.
  void* p = *arena.allocate(64);
  std::thread([&] { CHECK(arena.deallocate(p)); }).join();
  auto q = arena.allocate(64);
  REQUIRE(q);
  CHECK(arena.stats().remote_frees_drained == 101);
  REQUIRE(arena.deallocate(*q));
  check_fully_coalesced(arena);
}

TEST_CASE("arena: adopt_current_thread moves ownership") {
  auto arena = std::make_unique<aem::BuddyArena>(small_config());
  void* p = *arena->allocate(100);
  std::thread([&] {
    arena->adopt_current_thread();
    CHECK(arena->is_owner_thread());
    CHECK(arena->deallocate(p));  // local free on the new owner
    auto q = arena->allocate(200);
    REQUIRE(q);
    CHECK(arena->deallocate(*q));
    CHECK(arena->stats().bytes_in_use == 0);
  }).join();
  CHECK(!arena->is_owner_thread());
  CHECK(arena->allocate(10).error() == aem::errc::invalid_argument);  // debug: wrong thread
  arena->adopt_current_thread();
  check_fully_coalesced(*arena);
}

TEST_CASE("arena: without the hot cache every free coalesces at once") {
  aem::ArenaConfig c = small_config(1 * MiB);
  c.hot_cache_depth = 0;
  aem::BuddyArena arena{c};
  std::vector<void*> blocks;
  for (int i = 0; i < 200; ++i) blocks.push_back(*arena.allocate(static_cast<std::size_t>(i % 13) * 97));
  for (std::size_t i = 0; i < blocks.size(); i += 2) REQUIRE(arena.deallocate(blocks[i]));
  for (std::size_t i = 1; i < blocks.size(); i += 2) REQUIRE(arena.deallocate(blocks[i]));
  const aem::ArenaStats s = arena.stats();  // no trim()
  CHECK(s.largest_free_block == 1 * MiB);
  CHECK(s.free_blocks[s.orders - 1] == 1);
}

TEST_CASE("arena: floods of same-size requests do not fragment") {
  aem::ArenaConfig c = small_config(1 * MiB);
  c.on_exhaustion = aem::ExhaustionPolicy::fail;
  aem::BuddyArena arena{c};
  std::vector<void*> blocks;
  for (int round = 0; round < 3; ++round) {
    while (true) {
      auto p = arena.allocate(1500);
      if (!p) break;
      blocks.push_back(*p);
    }
    CHECK(blocks.size() == 512);  // every byte of the region serves a 2 KiB block
    for (void* p : blocks) REQUIRE(arena.deallocate(p));
    blocks.clear();
  }
  check_fully_coalesced(arena);
}

TEST_CASE("arena: general allocations come from the process allocator") {
  void* p = aem::detail::general_alloc(100);
  REQUIRE(p != nullptr);
  aem::detail::general_free(p);
  void* q = aem::detail::general_alloc(100, 256);
  CHECK(aligned(q, 256));
  aem::detail::general_free(q);
  aem::detail::general_free(nullptr);
  std::vector<int, aem::detail::GeneralAllocator<int>> v;
  for (int i = 0; i < 1000; ++i) v.push_back(i);
  CHECK(v[999] == 999);
  struct alignas(128) Wide {
    char c;
  };
  std::vector<Wide, aem::detail::GeneralAllocator<Wide>> w(3);
  CHECK(aligned(w.data(), 128));
  CHECK(aem::detail::GeneralAllocator<int>{} == aem::detail::GeneralAllocator<Wide>{});
}

#if defined(AEM_ARENA_ASAN)
TEST_CASE("arena: under AddressSanitizer free arena memory is poisoned") {
  aem::BuddyArena arena{small_config()};
  auto* p = static_cast<char*>(*arena.allocate(1000));
  CHECK(!__asan_region_is_poisoned(p, 1024));
  REQUIRE(arena.deallocate(p));
  CHECK(__asan_address_is_poisoned(p + 100));  // cached: only the link word is open
  arena.trim();
  CHECK(__asan_address_is_poisoned(p + 512));
  auto* q = static_cast<char*>(*arena.allocate(64 * KiB));
  CHECK(!__asan_region_is_poisoned(q, 64 * KiB));
  REQUIRE(arena.deallocate(q));
  check_fully_coalesced(arena);
}
#endif
