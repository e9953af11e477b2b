// arena_free.cpp — BuddyArena's freeing side: validation of every free (double free, interior
// and foreign pointers), the hot-cache fast path, remote frees from other threads and their
// drain, and the report an EventData makes when its block does not check out.
#include <aem/arena.hpp>

#include "alloc/arena_detail.hpp"
#include "alloc/buddy_tags.hpp"
#include "alloc/fallback_heap.hpp"
#include "base/log.hpp"

#include <algorithm>
#include <bit>

namespace aem {

namespace {

using detail::BlockState;
using detail::current_thread_id;
using detail::load_tag;
using detail::make_tag;
using detail::store_tag;
using detail::tag_order;
using detail::tag_state;

const char* error_text(errc e) noexcept {
  switch (e) {
    case errc::double_free: return "double free";
    case errc::foreign_pointer: return "foreign pointer";
    default: return "invalid free";
  }
}

}  // namespace

// reclaim takes back a block that was allocated or pending:
// into the hot cache if there is room, otherwise into the free lists.
inline void BuddyArena::reclaim(std::size_t index, unsigned order) noexcept {
  if (order < hot_limit_ && hot_top_[order] != hot_base_[order + 1]) {
    push_cached(node_at(index), index, order);
    return;
  }
  release_to_lists(index, order);
}

inline void BuddyArena::push_cached(FreeNode* node, std::size_t index, unsigned order) noexcept {
  detail::arena_poison(node, min_block_ << order);
  *hot_top_[order]++ = node;
  store_tag(tags_, index, make_tag(BlockState::cached, order));
}

// free_block validates and frees a block; `expected_capacity` (0: unknown) is the capacity an
// EventData recorded. Nothing is touched unless the block checks out.
errc BuddyArena::free_block(void* p, std::size_t expected_capacity) noexcept {
  const std::size_t offset = reinterpret_cast<std::uintptr_t>(p) - reinterpret_cast<std::uintptr_t>(base_);
  if (offset >= capacity_) [[unlikely]] {
    if (p == nullptr) return errc::ok;
    return fallback_->free(p);
  }
  if ((offset & (min_block_ - 1)) != 0) [[unlikely]] return errc::foreign_pointer;
  const std::size_t index = offset >> min_shift_;
  const std::uint8_t tag = load_tag(tags_, index);
  if (tag_state(tag) != BlockState::allocated) [[unlikely]] return classify_bad_free(index, tag);
  const unsigned order = tag_order(tag);
  if (expected_capacity != 0 && expected_capacity != (min_block_ << order)) [[unlikely]] {
    return errc::foreign_pointer;
  }
  if (owner_.load(std::memory_order_relaxed) != current_thread_id()) [[unlikely]] {
    return free_remote(index, tag, p);
  }
  reclaim(index, order);
  return errc::ok;
}

// free_remote claims the block (allocated -> remote) with a CAS, so that two threads freeing
// the same block cannot both queue it, then pushes it on the remote-free list.
errc BuddyArena::free_remote(std::size_t index, std::uint8_t tag, void* p) noexcept {
  std::uint8_t expected = tag;
  while (!detail::cas_tag(tags_, index, expected, make_tag(BlockState::remote, tag_order(expected)))) {
    if (tag_state(expected) != BlockState::allocated) return classify_bad_free(index, expected);
  }
  auto* node = static_cast<FreeNode*>(p);
  FreeNode* head = remote_head_.load(std::memory_order_relaxed);
  do {
    node->next = head;
  } while (!remote_head_.compare_exchange_weak(head, node, std::memory_order_release, std::memory_order_relaxed));
  return errc::ok;
}

// classify_bad_free names what a non-live block start or an interior pointer is: a block that
// is free, cached or pending is a double free; an interior pointer lies inside exactly one
// current block, found in at most top_order_ steps (the tag invariant makes the first
// aligned start whose tag has that very order the container): inside a free, cached or
// pending block it is a block freed before and since merged (double free), inside a live one
// it is foreign.
errc BuddyArena::classify_bad_free(std::size_t index, std::uint8_t tag) const noexcept {
  switch (tag_state(tag)) {
    case BlockState::free:
    case BlockState::cached:
    case BlockState::remote: return errc::double_free;
    case BlockState::allocated: return errc::foreign_pointer;
    case BlockState::none: break;
  }
  for (unsigned k = 1; k <= top_order_; ++k) {
    const std::size_t start = index & ~((std::size_t{1} << k) - 1);
    const std::uint8_t t = load_tag(tags_, start);
    if (t != 0 && tag_order(t) == k) {
      return tag_state(t) == BlockState::allocated ? errc::foreign_pointer : errc::double_free;
    }
  }
  return errc::foreign_pointer;
}

__attribute__((noinline)) Result<void> BuddyArena::deallocate_general(void* p) noexcept {
  const errc error = free_block(p, 0);
  if (error == errc::ok) return {};
  errors_.fetch_add(1, std::memory_order_relaxed);
  return error;
}

void BuddyArena::release_block(void* p, std::size_t capacity) noexcept {
  if (put_cached(p, capacity)) [[likely]] return;
  const errc error = free_block(p, capacity);
  if (error != errc::ok) [[unlikely]] {
    errors_.fetch_add(1, std::memory_order_relaxed);
    report(make_error_code(error), p, capacity);
  }
}

void BuddyArena::report(std::error_code error, const void* p, std::size_t capacity) noexcept {
  detail::log(LogLevel::error, "BuddyArena %p: EventData of capacity %zu at %p: %s; block left alone",
              static_cast<void*>(this), capacity, p, error_text(static_cast<errc>(error.value())));
  if (config_.on_error) {
    try {
      config_.on_error(error, p);
    } catch (...) {  // a destructor path: swallow rather than terminate
    }
  }
}

std::size_t BuddyArena::drain_remote_frees() noexcept {
  if (remote_head_.load(std::memory_order_relaxed) == nullptr) return 0;
  if (!owner_check("drain_remote_frees")) return 0;
  FreeNode* node = remote_head_.exchange(nullptr, std::memory_order_acquire);
  std::size_t count = 0;
  while (node != nullptr) {
    FreeNode* next = node->next;  // read before reclaim reuses the header
    const std::size_t index = index_of(node);
    const unsigned order = tag_order(load_tag(tags_, index));
    reclaim(index, order);
    ++count;
    node = next;
  }
  remote_drained_ += count;
  return count;
}

}  // namespace aem
