// buddy_arena.cpp — BuddyArena: construction, free lists, splitting, coalescing, allocation.
//
// Data structures (all owned by the owner thread unless stated):
//  - free lists per order: intrusive doubly-linked lists whose nodes are the free blocks
//    themselves (a free block's first 16 bytes), so removing a buddy from the middle of its
//    list during a merge is O(1); `nonempty_` has bit k set iff list k is non-empty, so finding
//    the smallest order that can serve a request is one count-trailing-zeros, never a scan.
//  - tags: one byte per min_block giving the state and order of the block starting there
//    (alloc/buddy_tags.hpp explains why a byte array rather than per-order bitmaps).
//  - hot caches: per order, a stack of pointers to freed blocks kept uncoalesced (LIFO, so
//    the block reused next is the one most likely still in cache). Without them a LIFO
//    alloc/free pair on a mostly free arena costs log2(capacity/min_block) merges on the free
//    and as many splits on the next allocation, each touching a block far away in memory; with
//    them the pair is a push and a pop. The stacks hold pointers rather than linking the blocks
//    (like jemalloc's tcache bins) so that caching a block never touches its memory, and a run
//    of allocations is not a chain of dependent cache misses through the blocks' headers.
//    They live after the tag table, hot_cache_depth slots per cacheable order.
//  - remote-free list: a lock-free MPSC stack (Treiber push, exchange-all pop) of blocks freed
//    on other threads, linked through the blocks themselves; any thread pushes, only the owner
//    pops. A pop takes the whole list at once, so there is no ABA problem.
//
// This file holds construction, the free lists, allocation, ownership and statistics; the
// freeing side (validation, hot-cache pushes, remote frees, error reports) is in
// alloc/arena_free.cpp.
#include <aem/arena.hpp>

#include "alloc/arena_detail.hpp"
#include "base/log.hpp"
#include "alloc/buddy_tags.hpp"
#include "alloc/fallback_heap.hpp"
#include "alloc/region.hpp"

#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <stdexcept>
#include <utility>

namespace aem {

namespace detail {

constinit thread_local std::uint64_t t_thread_id __attribute__((tls_model("initial-exec"))) = 0;
std::atomic<std::uint64_t> g_next_thread_id{1};

static_assert(make_tag(BlockState::allocated, 0) == kTagAllocated);
static_assert(make_tag(BlockState::cached, 0) == kTagCached);

}  // namespace detail

namespace {

using detail::BlockState;
using detail::current_thread_id;
using detail::load_tag;
using detail::make_tag;
using detail::store_tag;
using detail::tag_order;
using detail::tag_state;

// Blocks above this size are never cached: holding a large block uncoalesced would split the
// arena for little gain, since large requests are rare and their split chains short.
constexpr std::size_t kHotCacheMaxBlock = std::size_t{64} << 10;
constexpr std::size_t kHugePage = std::size_t{2} << 20;

// The tag table starts this far into its first page. Unskewed, the tag of the block at the
// region's start (and of every block at a multiple of 4096 * min_block) sits at the same
// offset within a page as the block's header, and store-to-load forwarding, which first
// compares only the low 12 address bits, can hold a header load behind the tag store
// ("4K aliasing"); a LIFO alloc/free loop on the first block measured a few percent slower.
constexpr std::size_t kTagSkew = 2048 + 64 + 8;

const char* config_problem(const ArenaConfig& c) noexcept {
  if (c.min_block < sizeof(detail::FreeNode) || !std::has_single_bit(c.min_block)) {
    return "aem::ArenaConfig::min_block must be a power of two >= 16";
  }
  if (!std::has_single_bit(c.capacity) || c.capacity < c.min_block) {
    return "aem::ArenaConfig::capacity must be a power of two >= min_block";
  }
  if (c.capacity / c.min_block > (std::size_t{1} << (ArenaStats::kMaxOrders - 1))) {
    return "aem::ArenaConfig::capacity / min_block must be at most 2^31";
  }
  if (c.hot_cache_depth > 65536) return "aem::ArenaConfig::hot_cache_depth must be at most 65536";
  return nullptr;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Construction

Result<void> BuddyArena::validate(const ArenaConfig& config) noexcept {
  if (config_problem(config) != nullptr) return errc::invalid_argument;
  return {};
}

BuddyArena::BuddyArena(ArenaConfig config) : config_(std::move(config)) {
  if (const char* problem = config_problem(config_)) throw std::invalid_argument(problem);
  capacity_ = config_.capacity;
  min_block_ = config_.min_block;
  min_shift_ = static_cast<unsigned>(std::countr_zero(min_block_));
  min_blocks_ = capacity_ >> min_shift_;
  top_order_ = static_cast<unsigned>(std::countr_zero(capacity_)) - min_shift_;
  debug_ = config_.debug;
  fallback_ = std::make_unique<detail::FallbackHeap>();

  const bool heap = config_.zone == Zone::heap;
  const bool huge = heap && config_.huge_pages && capacity_ >= kHugePage;
  const std::size_t page = detail::page_size();
  if (!heap) {
    const std::size_t threshold = std::max(config_.release_threshold, 2 * page);
    release_order_ = kMaxOrders;
    for (unsigned k = 0; k <= top_order_; ++k) {
      if ((min_block_ << k) >= threshold) {
        release_order_ = k;
        break;
      }
    }
  }
  hot_depth_ = config_.hot_cache_depth;
  hot_limit_ = 0;
  if (hot_depth_ > 0) {
    for (unsigned k = 0; k <= top_order_ && (min_block_ << k) <= kHotCacheMaxBlock && k < release_order_; ++k) {
      hot_limit_ = k + 1;
    }
  }
  // The hot caches' stacks follow the tag table in its mapping (pointer-aligned).
  const std::size_t tag_bytes = (kTagSkew + min_blocks_ + alignof(void*) - 1) & ~(alignof(void*) - 1);
  const std::size_t stack_bytes = std::size_t{hot_limit_} * hot_depth_ * sizeof(void*);
  // Page alignment makes every block of a page or more page-aligned (io_uring buffers);
  // huge-page alignment lets transparent huge pages cover the region end to end.
  detail::Mapping region = detail::map_region(capacity_, huge ? kHugePage : page, heap, huge);
  if (region.start == nullptr) {
    throw std::system_error(errno, std::generic_category(), "aem::BuddyArena: mmap of the region");
  }
  detail::Mapping tags = detail::map_region(tag_bytes + stack_bytes, page, heap, false);
  if (tags.start == nullptr) {
    const int err = errno;
    detail::unmap_region(region);
    throw std::system_error(err, std::generic_category(), "aem::BuddyArena: mmap of the tag table");
  }
  base_ = region.aligned;
  region_mapping_ = region.start;
  region_mapping_size_ = region.length;
  tags_ = reinterpret_cast<std::uint8_t*>(tags.aligned) + kTagSkew;
  tag_bias_ = reinterpret_cast<std::uintptr_t>(tags_) - (reinterpret_cast<std::uintptr_t>(base_) >> min_shift_);
  tags_mapping_size_ = tags.length;
  auto** stacks = reinterpret_cast<void**>(tags.aligned + tag_bytes);
  for (unsigned k = 0; k <= hot_limit_; ++k) {
    hot_base_[k] = stacks + std::size_t{k} * hot_depth_;
    if (k < kMaxOrders) hot_top_[k] = hot_base_[k];
  }
  // Debug mode checks the calling thread on every allocation, so it never takes the fast path.
  fast_max_ = debug_ || hot_limit_ == 0 ? 0 : min_block_ << (hot_limit_ - 1);
  min_mask_ = min_block_ - 1;
  bsr_bias_ = min_shift_ - 1;
  owner_.store(current_thread_id(), std::memory_order_relaxed);
  detail::arena_poison(base_, capacity_);
  push_free(0, top_order_);
}

BuddyArena::~BuddyArena() {
  if (remote_head_.load(std::memory_order_acquire) != nullptr) {
    adopt_current_thread();  // destruction is the last owner action, whoever runs it
    drain_remote_frees();
  }
  if (debug_) {
    std::size_t blocks = 0;
    for (unsigned k = 0; k < kMaxOrders; ++k) blocks += held_count_[k] - cached_count(k);
    const std::size_t fallback_blocks = fallback_->live_blocks();
    if (blocks != 0 || fallback_blocks != 0) {
      detail::log(LogLevel::warning,
                  "BuddyArena %p destroyed with %zu blocks (%zu bytes) and %zu fallback blocks still allocated",
                  static_cast<void*>(this), blocks, bytes_in_use(), fallback_blocks);
    }
  }
  detail::arena_unpoison(base_, capacity_);
  detail::unmap_region({tags_ - kTagSkew, tags_mapping_size_, nullptr});
  detail::unmap_region({region_mapping_, region_mapping_size_, nullptr});
}

// ---------------------------------------------------------------------------------------------
// Free lists

// The head of each free list has no meaningful `prev` (the list head array is the reference),
// so popping the head never writes into the next free block: one cold cache line fewer per
// allocation that takes a block from the lists.
void BuddyArena::push_free(std::size_t index, unsigned order) noexcept {
  FreeNode* node = node_at(index);
  detail::arena_unpoison(node, sizeof(FreeNode));
  FreeNode* head = free_head_[order];
  node->next = head;
  if (head != nullptr) head->prev = node;
  free_head_[order] = node;
  nonempty_ |= std::uint64_t{1} << order;
  ++free_count_[order];
  store_tag(tags_, index, make_tag(BlockState::free, order));
}

void BuddyArena::remove_free(FreeNode* node, unsigned order) noexcept {
  FreeNode* next = node->next;
  if (free_head_[order] == node) {
    free_head_[order] = next;
    if (next == nullptr) nonempty_ &= ~(std::uint64_t{1} << order);
  } else {
    FreeNode* prev = node->prev;
    prev->next = next;
    if (next != nullptr) next->prev = prev;
  }
  --free_count_[order];
}

// take_block returns a block of `order` from the hot cache or the free lists, splitting a
// larger block if needed (at most top_order_ splits), or nullptr if none is free.
inline void* BuddyArena::take_block(unsigned order) noexcept {
  std::size_t index;
  FreeNode* node;
  if (hot_front_ != nullptr && hot_front_order_ == order) {  // debug mode gets here
    node = hot_front_;
    hot_front_ = nullptr;
    index = index_of(node);
  } else if (hot_top_[order] != hot_base_[order]) {
    node = static_cast<FreeNode*>(*--hot_top_[order]);
    index = index_of(node);
  } else {
    const std::uint64_t usable = nonempty_ & (~std::uint64_t{0} << order);
    if (usable == 0) [[unlikely]] return nullptr;
    unsigned k = static_cast<unsigned>(std::countr_zero(usable));
    node = free_head_[k];
    remove_free(node, k);
    index = index_of(node);
    ++held_count_[order];
    held_bytes_ += min_block_ << order;
    if (held_bytes_ > high_water_) high_water_ = held_bytes_;
    while (k > order) {  // keep the lower half, free the upper half at each level
      --k;
      push_free(index + (std::size_t{1} << k), k);
    }
  }
  store_tag(tags_, index, make_tag(BlockState::allocated, order));
  detail::arena_unpoison(node, min_block_ << order);
  return node;
}

// take_from_larger_cache serves `order` by splitting the smallest cached block of a higher
// order (at most top_order_ splits), or returns nullptr.
void* BuddyArena::take_from_larger_cache(unsigned order) noexcept {
  for (unsigned k = order + 1; k < hot_limit_; ++k) {
    if (hot_top_[k] == hot_base_[k]) continue;
    auto* node = static_cast<FreeNode*>(*--hot_top_[k]);
    --held_count_[k];
    held_bytes_ -= (min_block_ << k) - (min_block_ << order);
    const std::size_t index = index_of(node);
    detail::arena_unpoison(node, sizeof(FreeNode));
    while (k > order) {
      --k;
      push_free(index + (std::size_t{1} << k), k);
    }
    ++held_count_[order];
    store_tag(tags_, index, make_tag(BlockState::allocated, order));
    detail::arena_unpoison(node, min_block_ << order);
    return node;
  }
  return nullptr;
}

// release_to_lists merges a block that just became free with its free buddies (at most
// top_order_ merges) and puts the result on its free list.
//
// Virtual zone: once the result is at least release_order_ (R), the pages that can hold stale
// data go back to the OS. Those are the pages of the order-max(k, R) block D around the freed
// block: the freed block itself and the buddies below R it absorbed (any of them may have been
// written). Buddies of order R and up were released when they became free, all but the first
// page, where their links live; those pages stay resident rather than being given back and
// faulted in again by the next split, so a fully free region keeps at most one page per
// R-sized chunk. D's own first page stays only if it holds the merged block's links.
void BuddyArena::release_to_lists(std::size_t index, unsigned order) noexcept {
  const std::size_t freed_index = index;
  const unsigned freed_order = order;
  held_bytes_ -= min_block_ << order;
  // The buddy's header is the likely next cache miss: start fetching it before the tag check.
  if (order < top_order_) __builtin_prefetch(node_at(index ^ (std::size_t{1} << order)));
  --held_count_[order];
  detail::arena_poison(node_at(index), min_block_ << order);
  while (order < top_order_) {
    const std::size_t buddy = index ^ (std::size_t{1} << order);
    if (load_tag(tags_, buddy) != make_tag(BlockState::free, order)) break;
    remove_free(node_at(buddy), order);
    const std::size_t absorbed = std::max(index, buddy);
    store_tag(tags_, absorbed, 0);  // the absorbed half is now interior
    detail::arena_poison(node_at(absorbed), sizeof(FreeNode));
    index = std::min(index, buddy);
    ++order;
  }
  push_free(index, order);
  if (order >= release_order_) [[unlikely]] {
    const unsigned dirty_order = std::max(freed_order, release_order_);
    const std::size_t dirty_index = freed_index & ~((std::size_t{1} << dirty_order) - 1);
    const std::size_t skip = dirty_index == index ? detail::page_size() : 0;
    const std::size_t released = detail::release_pages(reinterpret_cast<std::byte*>(node_at(dirty_index)) + skip,
                                                       (min_block_ << dirty_order) - skip);
    if (released != 0) {
      ++release_calls_;
      released_bytes_ += released;
    }
  }
}

std::size_t BuddyArena::cached_count(unsigned order) const noexcept {
  return static_cast<std::size_t>(hot_top_[order] - hot_base_[order]) + (hot_front_ != nullptr && hot_front_order_ == order ? 1 : 0);
}

// bytes_in_use is derived rather than counted: the fast paths move blocks between a hot cache
// and the application without touching any counter, because a counter updated by every
// allocation and free is a store-to-load dependency from each operation to the next, which
// measurably slows a tight alloc/free loop.
std::size_t BuddyArena::bytes_in_use() const noexcept {
  std::size_t bytes = 0;
  for (unsigned k = 0; k <= top_order_; ++k) bytes += (held_count_[k] - cached_count(k)) * (min_block_ << k);
  return bytes;
}

void BuddyArena::trim() noexcept {
  if (debug_ && !owner_check("trim")) return;
  if (FreeNode* front = std::exchange(hot_front_, nullptr)) release_to_lists(index_of(front), hot_front_order_);
  for (unsigned k = 0; k < hot_limit_; ++k) {
    while (hot_top_[k] != hot_base_[k]) release_to_lists(index_of(*--hot_top_[k]), k);
  }
}

// ---------------------------------------------------------------------------------------------
// Allocation

// allocate_block is the general allocation path: debug checks, remote drain, free lists with
// splitting, then exhaustion handling.
__attribute__((noinline)) void* BuddyArena::allocate_block(std::size_t size, std::size_t* capacity, errc* error) {
  if (debug_ && !owner_check("allocate")) {
    *error = errc::invalid_argument;
    return nullptr;
  }
  if (remote_head_.load(std::memory_order_relaxed) != nullptr) [[unlikely]] {
    drain_remote_frees();
  }
  if (size > capacity_) [[unlikely]] return allocate_slow(size, 0, capacity, error);
  const unsigned order = order_for(size);
  void* p = take_block(order);
  if (p == nullptr) [[unlikely]] return allocate_slow(size, order, capacity, error);
  *capacity = min_block_ << order;
  return p;
}

__attribute__((noinline)) Result<void*> BuddyArena::allocate_general(std::size_t size) {
  std::size_t capacity;
  errc error = errc::ok;
  void* p = allocate_block(size, &capacity, &error);
  if (p == nullptr) [[unlikely]] return error;
  return p;
}

Result<EventData> BuddyArena::allocate_data(std::size_t size) {
  std::size_t capacity = 0;
  void* p = take_cached(size, &capacity);
  if (p == nullptr) [[unlikely]] {
    errc error = errc::ok;
    p = allocate_block(size, &capacity, &error);
    if (p == nullptr) return error;
  }
  return EventData(this, static_cast<std::byte*>(p), size, capacity);
}

void* BuddyArena::allocate_slow(std::size_t size, unsigned order, std::size_t* capacity, errc* error) {
  if (size > capacity_) {  // no block of the region can ever serve it
    if (config_.on_exhaustion == ExhaustionPolicy::fail) {
      *error = errc::invalid_argument;
      return nullptr;
    }
    call_pressure(size, true);
    fallback_->count_oversize();
    *capacity = size;
    return allocate_fallback(size, error);
  }
  // A larger cached block can be split at once; otherwise the blocks held in the hot caches
  // may be what keeps a large enough block from forming.
  if (void* p = take_from_larger_cache(order)) {
    *capacity = min_block_ << order;
    return p;
  }
  trim();
  if (void* p = take_block(order)) {
    *capacity = min_block_ << order;
    return p;
  }
  ++exhaustion_count_;
  call_pressure(size, false);  // the application may free blocks: retry once
  drain_remote_frees();
  trim();
  if (void* p = take_block(order)) {
    *capacity = min_block_ << order;
    return p;
  }
  if (config_.on_exhaustion == ExhaustionPolicy::fail) {
    *error = errc::out_of_memory;
    return nullptr;
  }
  *capacity = min_block_ << order;
  return allocate_fallback(*capacity, error);
}

void* BuddyArena::allocate_fallback(std::size_t bytes, errc* error) {
  // Same alignment promise as the region: 16 bytes, whole pages from one page up.
  const std::size_t page = detail::page_size();
  void* p = fallback_->allocate(bytes, bytes >= page ? page : 16);
  if (p == nullptr) *error = errc::out_of_memory;
  return p;
}

void BuddyArena::call_pressure(std::size_t size, bool oversized) {
  if (!config_.on_pressure || in_pressure_) return;
  MemoryPressure pressure;
  pressure.requested = size;
  pressure.in_use = bytes_in_use();
  pressure.capacity = capacity_;
  pressure.largest_free = stats_largest_free();
  pressure.oversized = oversized;
  pressure.policy = config_.on_exhaustion;
  struct Reentry {
    bool& flag;
    ~Reentry() { flag = false; }
  } reentry{in_pressure_};
  in_pressure_ = true;
  config_.on_pressure(pressure);
}

std::size_t BuddyArena::stats_largest_free() const noexcept {
  std::size_t largest = nonempty_ == 0 ? 0 : min_block_ << (63 - std::countl_zero(nonempty_));
  if (hot_front_ != nullptr) largest = std::max(largest, min_block_ << hot_front_order_);
  for (unsigned k = hot_limit_; k-- > 0;) {
    if (hot_top_[k] != hot_base_[k]) {
      largest = std::max(largest, min_block_ << k);
      break;
    }
  }
  return largest;
}

// ---------------------------------------------------------------------------------------------
// Ownership and statistics

void BuddyArena::adopt_current_thread() noexcept {
  owner_.store(current_thread_id(), std::memory_order_relaxed);
}

bool BuddyArena::is_owner_thread() const noexcept {
  return owner_.load(std::memory_order_relaxed) == current_thread_id();
}

bool BuddyArena::owner_check(const char* call) const noexcept {
  if (is_owner_thread()) return true;
  if (debug_) {
    detail::log(LogLevel::error, "BuddyArena %p: %s called off the owner thread; refused", static_cast<const void*>(this),
                call);
  }
  return false;
}

ArenaStats BuddyArena::stats() const {
  ArenaStats s;
  s.capacity = capacity_;
  s.min_block = min_block_;
  s.orders = top_order_ + 1;
  s.bytes_in_use = bytes_in_use();
  s.high_water = high_water_;
  for (unsigned k = 0; k <= top_order_; ++k) {
    s.free_blocks[k] = free_count_[k];
    s.cached_blocks[k] = cached_count(k);
    s.allocated_blocks[k] = held_count_[k] - s.cached_blocks[k];
    s.free_bytes += (free_count_[k] + s.cached_blocks[k]) * (min_block_ << k);
  }
  s.largest_free_block = stats_largest_free();
  s.fallback_count = fallback_->count();
  s.oversize_count = fallback_->oversize_count();
  s.fallback_bytes = fallback_->live_bytes();
  s.exhaustion_count = exhaustion_count_;
  s.remote_frees_drained = remote_drained_;
  s.errors_detected = errors_.load(std::memory_order_relaxed);
  s.release_calls = release_calls_;
  s.released_bytes = released_bytes_;
  return s;
}

}  // namespace aem
