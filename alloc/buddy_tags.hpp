// buddy_tags.hpp — the arena's side table: one tag byte per min_block.
//
// Why a per-min-block byte array rather than one bitmap per order: deallocate(void*) gets no
// size, and the byte at the block's first min_block gives its order in one load (bitmaps would
// need a search over the orders); the same byte holds the block's state, so validating a free
// (double free, interior pointer) costs nothing extra; and a thread that frees remotely can
// claim the block with one compare-and-swap on that byte, which is how a double free from two
// threads is caught. The price is one byte per min_block (1/64 of the capacity at 64 B),
// mapped lazily in the virtual zone.
//
// Invariant: a tag is non-zero exactly at the first min_block of every current block (free,
// allocated, cached or remote-pending); every split writes the new upper half's tag and every
// merge clears the absorbed half's, so interior positions always read zero.
//
// The bytes are accessed through std::atomic_ref with relaxed order: the owner's loads and
// stores compile to plain moves, and remote threads may read and CAS them without a data race.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace aem::detail {

// BlockState is the state half of a tag (bits 5..7); the order is bits 0..4.
enum class BlockState : std::uint8_t {
  none = 0,       // not the start of a block
  free = 1,       // in free list `order`
  allocated = 2,  // handed out
  cached = 3,     // freed into a hot cache, not coalescible until trimmed
  remote = 4,     // freed on another thread, waiting in the remote-free list
};

inline constexpr std::uint8_t make_tag(BlockState state, unsigned order) noexcept {
  return static_cast<std::uint8_t>((static_cast<unsigned>(state) << 5) | order);
}
inline constexpr BlockState tag_state(std::uint8_t tag) noexcept {
  return static_cast<BlockState>(tag >> 5);
}
inline constexpr unsigned tag_order(std::uint8_t tag) noexcept { return tag & 31u; }

inline std::uint8_t load_tag(std::uint8_t* tags, std::size_t index) noexcept {
  return std::atomic_ref<std::uint8_t>(tags[index]).load(std::memory_order_relaxed);
}
inline void store_tag(std::uint8_t* tags, std::size_t index, std::uint8_t tag) noexcept {
  std::atomic_ref<std::uint8_t>(tags[index]).store(tag, std::memory_order_relaxed);
}
// cas_tag replaces `expected` by `desired`; on failure `expected` holds the current tag.
inline bool cas_tag(std::uint8_t* tags, std::size_t index, std::uint8_t& expected,
                    std::uint8_t desired) noexcept {
  return std::atomic_ref<std::uint8_t>(tags[index])
      .compare_exchange_strong(expected, desired, std::memory_order_relaxed);
}

}  // namespace aem::detail
