// arena_fuzz.cpp — libFuzzer target: a BuddyArena driven by an operation sequence decoded
// from the input, cross-checked against a model after every step.
//
// Input: 4 configuration bytes (capacity 4 KiB–256 KiB, min_block, hot-cache depth, and
// zone/policy/debug/release threshold), then operations of one opcode byte and up to three
// argument bytes each. "Cross-checked after every step" means: every new block against the
// live extents (no overlap, inside the region, aligned), every freed or probed block against
// its fill pattern, error codes against what the model predicts, stats against the model's
// byte count. Any violation calls __builtin_trap(), which libFuzzer reports with the input.
#include <aem/arena.hpp>
#include <aem/event_data.hpp>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <thread>
#include <vector>

namespace {

#define FUZZ_CHECK(cond)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::fprintf(stderr, "arena_fuzz: check failed at line %d: %s\n", __LINE__, #cond); \
      __builtin_trap();                                                        \
    }                                                                          \
  } while (0)

struct Reader {
  const std::uint8_t* data;
  std::size_t size;
  std::size_t pos = 0;
  bool empty() const { return pos >= size; }
  std::uint8_t byte() { return pos < size ? data[pos++] : 0; }
  std::uint16_t u16() { return static_cast<std::uint16_t>(byte() | (byte() << 8)); }
};

struct Block {
  std::uint64_t id;
  std::byte* p;
  std::size_t size;
  std::size_t capacity;
  bool in_arena;
  aem::EventData data;
};

std::byte pattern(std::uint64_t id, std::size_t i) {
  return static_cast<std::byte>((id * 131 + i * 7 + (i >> 8)) & 0xff);
}

// Blocks are filled in full up to 2 KiB and on a sample beyond, to keep executions fast.
template <typename F>
void for_each_checked(std::size_t size, F&& f) {
  if (size <= 2048) {
    for (std::size_t i = 0; i < size; ++i) f(i);
  } else {
    for (std::size_t i = 0; i < 1024; ++i) f(i);
    for (std::size_t i = 1024; i < size - 1024; i += 61) f(i);
    for (std::size_t i = size - 1024; i < size; ++i) f(i);
  }
}

void fill(const Block& b) {
  for_each_checked(b.size, [&](std::size_t i) { b.p[i] = pattern(b.id, i); });
}
bool verify(const Block& b) {
  bool ok = true;
  for_each_checked(b.size, [&](std::size_t i) { ok &= b.p[i] == pattern(b.id, i); });
  return ok;
}

class Model {
 public:
  explicit Model(aem::BuddyArena& arena) : arena_(arena) {}

  void add(Block b) {
    const auto start = reinterpret_cast<std::uintptr_t>(b.p);
    const std::uintptr_t end = start + b.capacity;
    auto next = extents_.lower_bound(start);
    FUZZ_CHECK(next == extents_.end() || next->first >= end);
    FUZZ_CHECK(next == extents_.begin() || std::prev(next)->second <= start);
    extents_.emplace(start, end);
    FUZZ_CHECK(reinterpret_cast<std::uintptr_t>(b.p) % 16 == 0);
    if (b.capacity >= 4096) FUZZ_CHECK(reinterpret_cast<std::uintptr_t>(b.p) % 4096 == 0);
    if (b.in_arena) {
      FUZZ_CHECK(arena_.contains(b.p + b.capacity - 1));
      FUZZ_CHECK(std::has_single_bit(b.capacity));
      in_use_ += b.capacity;
    }
    fill(b);
    live_.push_back(std::move(b));
  }

  // take removes block i from the model after checking its contents.
  Block take(std::size_t i) {
    Block b = std::move(live_[i]);
    live_[i] = std::move(live_.back());
    live_.pop_back();
    FUZZ_CHECK(verify(b));
    extents_.erase(reinterpret_cast<std::uintptr_t>(b.p));
    if (b.in_arena) in_use_ -= b.capacity;
    return b;
  }

  // covered tells whether p lies inside a live block.
  bool covered(const void* p) const {
    const auto a = reinterpret_cast<std::uintptr_t>(p);
    auto it = extents_.upper_bound(a);
    return it != extents_.begin() && std::prev(it)->second > a;
  }

  std::vector<Block>& live() { return live_; }
  std::size_t in_use() const { return in_use_; }

 private:
  aem::BuddyArena& arena_;
  std::vector<Block> live_;
  std::map<std::uintptr_t, std::uintptr_t> extents_;
  std::size_t in_use_ = 0;
};

void free_block(aem::BuddyArena& arena, Block& b) {
  if (b.data) b.data.reset();
  else FUZZ_CHECK(arena.deallocate(b.p).has_value());
}

void check_stats(aem::BuddyArena& arena, Model& model) {
  const aem::ArenaStats s = arena.stats();
  FUZZ_CHECK(s.bytes_in_use == model.in_use());
  FUZZ_CHECK(s.bytes_in_use + s.free_bytes == s.capacity);
  FUZZ_CHECK(s.largest_free_block <= s.capacity);
  std::size_t allocated = 0;
  for (unsigned k = 0; k < s.orders; ++k) allocated += s.allocated_blocks[k] * (s.min_block << k);
  FUZZ_CHECK(allocated == s.bytes_in_use);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Reader in{data, size};
  aem::ArenaConfig config;
  config.capacity = std::size_t{4096} << (in.byte() % 7);        // 4 KiB .. 256 KiB
  config.min_block = std::size_t{16} << (in.byte() % 4);         // 16 .. 128 B
  if (config.min_block > config.capacity) config.min_block = config.capacity;
  static constexpr std::uint32_t kDepths[] = {0, 1, 2, 8};
  config.hot_cache_depth = kDepths[in.byte() % 4];
  const std::uint8_t flags = in.byte();
  config.zone = (flags & 1) != 0 ? aem::Zone::virtual_memory : aem::Zone::heap;
  config.on_exhaustion = (flags & 2) != 0 ? aem::ExhaustionPolicy::fail : aem::ExhaustionPolicy::fallback;
  config.debug = (flags & 4) != 0;
  config.huge_pages = false;
  config.release_threshold = std::size_t{8192} << ((flags >> 3) & 3);
  std::size_t pressure_calls = 0;
  config.on_pressure = [&](const aem::MemoryPressure& p) {
    ++pressure_calls;
    FUZZ_CHECK(p.capacity == config.capacity);
  };
  std::size_t reported = 0;
  config.on_error = [&](std::error_code, const void*) { ++reported; };

  aem::BuddyArena arena{config};
  Model model(arena);
  std::vector<void*> freed;  // recently freed pointers, for double-free probes
  std::uint64_t next_id = 0;
  // check_refusal: only the fail policy refuses, with the error its documentation names, and
  // only when no free block is large enough.
  auto check_refusal = [&](std::error_code error, std::size_t request) {
    FUZZ_CHECK(config.on_exhaustion == aem::ExhaustionPolicy::fail);
    FUZZ_CHECK(error == (request > config.capacity ? aem::errc::invalid_argument : aem::errc::out_of_memory));
    if (request <= config.capacity) FUZZ_CHECK(arena.stats().largest_free_block < arena.block_size(request));
  };

  while (!in.empty()) {
    const std::uint8_t op = in.byte();
    switch (op % 9) {
      case 0:    // allocate raw
      case 1: {  // allocate EventData
        const std::uint16_t v = in.u16();
        const unsigned shift = in.byte() % 12;
        const std::size_t request = (static_cast<std::size_t>(v) << shift) >> 4;
        Block b{next_id++, nullptr, request, 0, false, {}};
        if (op % 9 == 1) {
          auto r = arena.allocate_data(request);
          if (!r) {
            check_refusal(r.error(), request);
            break;
          }
          b.data = std::move(*r);
          b.p = b.data.data();
          b.capacity = b.data.capacity();
          FUZZ_CHECK(b.data.size() == request);
        } else {
          auto r = arena.allocate(request);
          if (!r) {
            check_refusal(r.error(), request);
            break;
          }
          b.p = static_cast<std::byte*>(*r);
          b.capacity = request > config.capacity ? request : arena.block_size(request);
        }
        b.in_arena = arena.contains(b.p);
        if (b.in_arena) FUZZ_CHECK(b.capacity == arena.block_size(request));
        else FUZZ_CHECK(config.on_exhaustion == aem::ExhaustionPolicy::fallback);
        model.add(std::move(b));
        break;
      }
      case 2: {  // free block i
        if (model.live().empty()) break;
        Block b = model.take(in.byte() % model.live().size());
        void* p = b.p;
        free_block(arena, b);
        freed.push_back(p);
        if (freed.size() > 16) freed.erase(freed.begin());
        break;
      }
      case 3: {  // verify and rewrite block i under a new id
        if (model.live().empty()) break;
        Block& b = model.live()[in.byte() % model.live().size()];
        FUZZ_CHECK(verify(b));
        b.id = next_id++;
        fill(b);
        break;
      }
      case 4:
        arena.trim();
        break;
      case 5: {  // free up to n blocks on another thread
        const std::size_t n = in.byte() % 8;
        std::vector<Block> batch;
        for (std::size_t i = 0; i < n && !model.live().empty(); ++i) {
          batch.push_back(model.take(in.byte() % model.live().size()));
        }
        std::thread([&] {
          for (Block& b : batch) free_block(arena, b);
        }).join();
        if (in.byte() % 2 == 0) arena.drain_remote_frees();
        break;
      }
      case 6: {  // double free of a freed pointer that no live block covers
        if (freed.empty()) break;
        void* p = freed[in.byte() % freed.size()];
        if (model.covered(p)) break;  // reused since: freeing it would be a real free
        const auto r = arena.deallocate(p);
        FUZZ_CHECK(r.error() == aem::errc::double_free);
        break;
      }
      case 7: {  // interior pointer of a live arena block
        if (model.live().empty()) break;
        Block& b = model.live()[in.byte() % model.live().size()];
        if (!b.in_arena || b.capacity < 2 * config.min_block) break;
        const std::size_t off = (1 + in.byte() % (b.capacity / config.min_block - 1)) * config.min_block;
        FUZZ_CHECK(arena.deallocate(b.p + off).error() == aem::errc::foreign_pointer);
        FUZZ_CHECK(arena.deallocate(b.p + 1).error() == aem::errc::foreign_pointer);
        break;
      }
      case 8:
        arena.drain_remote_frees();
        check_stats(arena, model);
        break;
    }
  }

  while (!model.live().empty()) {
    Block b = model.take(model.live().size() - 1);
    free_block(arena, b);
  }
  arena.drain_remote_frees();
  arena.trim();
  const aem::ArenaStats s = arena.stats();
  FUZZ_CHECK(s.bytes_in_use == 0);
  FUZZ_CHECK(s.fallback_bytes == 0);
  FUZZ_CHECK(s.largest_free_block == s.capacity);
  FUZZ_CHECK(s.free_blocks[s.orders - 1] == 1);
  FUZZ_CHECK(s.free_bytes == s.capacity);
  FUZZ_CHECK(reported == 0);
  (void)pressure_calls;
  return 0;
}
