// arena.hpp — BuddyArena: a per-core, constant-time binary buddy allocator for event data.
//
// After AEM's vmtable: each core owns one contiguous region from which event data is allocated
// in bounded time (at most log2(capacity / min_block) split or merge steps, never a scan), with
// no fragmentation under floods of same-size requests, and with the application deciding what
// happens when the region runs out (ArenaConfig::on_exhaustion, ArenaConfig::on_pressure).
#pragma once

#include <aem/event_data.hpp>
#include <aem/export.hpp>
#include <aem/result.hpp>

#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <system_error>
#include <utility>

// The hot-cache paths are inline (below) and keep ASan's view of free memory like the rest of
// the arena; a program must then be built with or without ASan as a whole, as ASan requires.
#if defined(__SANITIZE_ADDRESS__)
#define AEM_ARENA_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define AEM_ARENA_ASAN 1
#endif
#endif
#if defined(AEM_ARENA_ASAN)
#include <sanitizer/asan_interface.h>
#endif

namespace aem {

namespace detail {
class FallbackHeap;

// FreeNode is the header a free block carries in its first bytes. In a free list `prev` links
// backwards (except at the head, where it is meaningless); the remote-free list uses only
// `next`. Blocks in the hot caches carry nothing: those caches are arrays of block pointers.
struct FreeNode {
  FreeNode* next;
  FreeNode* prev;
};

// Thread identity: a per-thread number that is never reused (0 until the thread first needs
// one). pthread ids and TLS addresses are recycled when a thread exits, which would silently
// make a new thread the owner. initial-exec TLS keeps the owner check to one %fs-relative load
// even in -fPIC code; constinit tells every user that no dynamic initialisation can be pending,
// so the access needs no TLS wrapper call.
extern constinit thread_local std::uint64_t t_thread_id __attribute__((tls_model("initial-exec")));

// Tag bytes of allocated and cached blocks of order 0 (alloc/buddy_tags.hpp has the layout);
// the order is added in the low bits.
inline constexpr std::uint8_t kTagAllocated = 2 << 5;
inline constexpr std::uint8_t kTagCached = 3 << 5;

inline void arena_poison([[maybe_unused]] const void* p, [[maybe_unused]] std::size_t bytes) noexcept {
#if defined(AEM_ARENA_ASAN)
  ASAN_POISON_MEMORY_REGION(p, bytes);
#endif
}
inline void arena_unpoison([[maybe_unused]] const void* p, [[maybe_unused]] std::size_t bytes) noexcept {
#if defined(AEM_ARENA_ASAN)
  ASAN_UNPOISON_MEMORY_REGION(p, bytes);
#endif
}
}  // namespace detail

// Zone selects how the arena's memory is backed, after AEM's two zone kinds.
enum class Zone : std::uint8_t {
  // heap: every page is faulted in at construction (and backed by transparent huge pages when
  // ArenaConfig::huge_pages), so no allocation ever takes a page fault. Lowest latency; the
  // whole capacity is resident for the arena's lifetime.
  heap,
  // virtual_memory: the capacity is only reserved; pages materialise on first touch, and when a
  // free coalesces into a block of at least ArenaConfig::release_threshold bytes, the pages
  // that may hold stale data go back to the OS with madvise(MADV_DONTNEED) (a free block keeps
  // the page holding its list links, so a fully free region keeps at most one page per
  // threshold-sized chunk). Resident memory follows the live set, at the price of page faults
  // and of an madvise call, with its TLB shootdown across the process's cores, on those frees.
  virtual_memory,
};

// ExhaustionPolicy says what allocate() does when no arena block can serve a request.
enum class ExhaustionPolicy : std::uint8_t {
  // fallback: serve the block from the general heap (the process's malloc), count it in
  // ArenaStats::fallback_count and call ArenaConfig::on_pressure. Requests larger than the
  // capacity are served the same way. Fallback blocks are freed by the same deallocate() /
  // EventData path.
  fallback,
  // fail: return errc::out_of_memory (errc::invalid_argument for size > capacity).
  fail,
};

// MemoryPressure describes a request the arena could not serve from its region.
struct MemoryPressure {
  std::size_t requested = 0;      // bytes asked for
  std::size_t in_use = 0;         // arena bytes in use (block sizes), hot caches excluded
  std::size_t capacity = 0;       // arena capacity
  std::size_t largest_free = 0;   // largest free arena block at the time
  bool oversized = false;         // requested > capacity: no arena block could ever serve it
  ExhaustionPolicy policy = ExhaustionPolicy::fallback;  // what happens if the retry fails
};

// ArenaConfig configures a BuddyArena; BuddyArena::validate() states the accepted ranges.
struct ArenaConfig {
  // capacity is the size of the region in bytes: a power of two, >= min_block, and at most
  // 2^31 * min_block (so that the block orders fit the 32-entry tables).
  std::size_t capacity = std::size_t{64} << 20;
  // min_block is the smallest block and the granularity of every block: a power of two >= 16
  // (a free block stores two list pointers in itself). Every block is aligned to
  // min(its size, page size), so at least 16 bytes, and page-aligned from one page up.
  std::size_t min_block = 64;
  Zone zone = Zone::heap;
  // huge_pages asks for transparent huge pages in the heap zone (fewer TLB misses).
  bool huge_pages = true;
  // release_threshold (virtual zone) is the smallest coalesced free block whose pages are
  // returned to the OS; values below two pages act as two pages.
  std::size_t release_threshold = std::size_t{64} << 10;
  // hot_cache_depth is how many freed blocks per order (block sizes up to 64 KiB, and below
  // release_threshold in the virtual zone) are kept aside without coalescing, so that steady
  // traffic in a size costs a stack push and pop instead of chains of merges and splits (like
  // the per-CPU page lists in front of Linux's buddy allocator). Each cacheable order reserves
  // 8 bytes per unit of depth next to the tag table. Cached blocks are coalesced by
  // trim(), and by the arena itself before it reports exhaustion; that trim is the one step
  // whose cost grows with the depth (about 0.3 ms with every order full at 1024). In the
  // virtual zone cached blocks stay resident. Besides the per-order stacks the arena keeps the
  // one block freed last (of any cacheable order) aside, so an order can hold one block more
  // than the depth. 0 makes every free coalesce at once. At most 65536.
  std::uint32_t hot_cache_depth = 1024;
  ExhaustionPolicy on_exhaustion = ExhaustionPolicy::fallback;
  // on_pressure is called on the owner thread when a request cannot be served from the region
  // (exhaustion or an oversize request), before the policy is applied. Blocks it frees are used
  // by one retry of the request. It may allocate (a nested exhaustion does not call it again).
  // If it throws, the exception leaves allocate() and nothing is allocated.
  std::function<void(const MemoryPressure&)> on_pressure;
  // on_error is called when EventData::reset() (which cannot return an error) finds that its
  // block is not a live block of the arena (errc::double_free or errc::foreign_pointer), with
  // the offending pointer; it runs on the freeing thread, must not throw, and is called in
  // addition to a one-line message to the runtime's log (Config::log; stderr by default).
  // deallocate() returns those errors instead.
  std::function<void(std::error_code, const void*)> on_error;
  // debug adds the checks that cost more than a few instructions on the fast path: every
  // allocation checks the calling thread (errc::invalid_argument off the owner thread), and
  // destroying an arena with live blocks prints a warning. Frees are validated in every mode
  // (double free, interior and foreign pointers, fallback blocks included): that costs
  // one tag byte read inside the region and a set lookup on the rare fallback blocks.
  // Defaults to on when the code that builds the ArenaConfig is compiled without NDEBUG.
#ifdef NDEBUG
  bool debug = false;
#else
  bool debug = true;
#endif
};

// ArenaStats is a snapshot of an arena's bookkeeping. Per-order arrays are indexed by order:
// order k holds blocks of min_block << k bytes; entries at and above `orders` are zero.
struct ArenaStats {
  static constexpr unsigned kMaxOrders = 32;

  std::size_t capacity = 0;
  std::size_t min_block = 0;
  unsigned orders = 0;                  // log2(capacity / min_block) + 1
  std::size_t bytes_in_use = 0;         // sum of the block sizes handed out and not yet freed
  // high_water is the largest number of bytes ever taken out of the free lists: blocks handed
  // out plus blocks held in the hot caches, i.e. the arena's peak demand. It equals the peak
  // of bytes_in_use when hot_cache_depth is 0 and exceeds it by at most the cached bytes
  // otherwise (tracking the exact peak would cost every allocation a shared counter update).
  std::size_t high_water = 0;
  std::size_t free_bytes = 0;           // in the free lists and hot caches
  std::size_t largest_free_block = 0;   // in the free lists or hot caches
  std::array<std::size_t, kMaxOrders> free_blocks{};       // in the free lists
  std::array<std::size_t, kMaxOrders> cached_blocks{};     // in the hot caches (free, uncoalesced)
  std::array<std::size_t, kMaxOrders> allocated_blocks{};  // handed out, including remote-pending
  std::uint64_t fallback_count = 0;        // requests served by the general heap
  std::uint64_t oversize_count = 0;        // of which larger than the capacity
  std::size_t fallback_bytes = 0;          // general-heap bytes currently held
  std::uint64_t exhaustion_count = 0;      // requests the region could not serve
  std::uint64_t remote_frees_drained = 0;  // blocks freed on other threads and reclaimed
  std::uint64_t errors_detected = 0;       // double frees and foreign pointers caught
  std::uint64_t release_calls = 0;         // madvise(MADV_DONTNEED) calls (virtual zone)
  std::size_t released_bytes = 0;          // bytes passed to those calls
};

// BuddyArena is a binary buddy allocator over one contiguous, page-aligned region, owned by one
// thread (normally one core's loop).
//
// Threads: allocate(), allocate_data(), drain_remote_frees(), trim() and stats() must be called
// on the owner thread: the thread that constructed the arena, or the last one that called
// adopt_current_thread(). deallocate() and EventData destruction may happen on any thread;
// frees from other threads go through a lock-free list that the owner drains at the start of
// every allocation and in drain_remote_frees().
//
// Freed blocks of up to 64 KiB first go to a per-order hot cache (ArenaConfig::hot_cache_depth)
// from which the next request of that order is served in a few instructions; blocks that do
// not fit there are coalesced with their free buddies at once.
//
// Bad configurations make the constructor throw std::invalid_argument (validate() checks one
// without throwing); failing to map the region throws std::system_error with the errno.
//
// Example:
//   aem::BuddyArena arena{{.capacity = 16 << 20, .zone = aem::Zone::virtual_memory}};
//   aem::Result<aem::EventData> d = arena.allocate_data(512);
//   if (!d) return d.error();
//   std::ranges::fill(d->bytes(), std::byte{0});
//   // ~EventData returns the block, on this thread or any other.
class AEM_EXPORT BuddyArena {
 public:
  static constexpr unsigned kMaxOrders = ArenaStats::kMaxOrders;

  // BuddyArena maps and initialises the region as one free block of the whole capacity.
  // Throws std::invalid_argument for a bad config, std::system_error if mmap fails.
  // The calling thread becomes the owner.
  explicit BuddyArena(ArenaConfig config = {});

  // ~BuddyArena unmaps the region. Every block must have been freed and every thread that
  // frees into the arena must be done; in debug mode live blocks are reported to the runtime's
  // log (Config::log; stderr by default).
  ~BuddyArena();

  BuddyArena(const BuddyArena&) = delete;
  BuddyArena& operator=(const BuddyArena&) = delete;

  // validate checks a configuration without constructing an arena: errc::invalid_argument
  // if a field is out of range (the constructor's exception names the field).
  static Result<void> validate(const ArenaConfig& config) noexcept;

  // allocate returns a block of at least `size` bytes (owner thread only).
  // Size 0 returns a distinct min_block block, like malloc(0). Sizes up to the capacity come
  // from the region when it has room; otherwise on_pressure is called and, under the fallback
  // policy, the block comes from the general heap (malloc), under fail the result is errc::out_of_memory.
  // Size > capacity: the general heap under fallback, errc::invalid_argument under fail.
  // Calling it on another thread in debug mode returns errc::invalid_argument.
  Result<void*> allocate(std::size_t size) {
    std::size_t capacity;
    if (void* p = take_cached(size, &capacity)) [[likely]] return p;
    return allocate_general(size);
  }

  // allocate_data is allocate() wrapped in an EventData whose size() is `size` (0 included:
  // an EventData that owns a min_block block). Same errors and thread rule as allocate().
  Result<EventData> allocate_data(std::size_t size);

  // adopt wraps `block`, which allocate(`requested`) of this arena returned and which is still
  // live, in an EventData whose size() is `used` (<= requested) and which frees the block when
  // destroyed. The caller gives up the block. Any thread. Used to hand a filled I/O buffer to a
  // handler without copying it.
  EventData adopt(void* block, std::size_t requested, std::size_t used) noexcept {
    const std::size_t capacity = requested <= capacity_ ? block_size(requested) : requested;
    return EventData(this, static_cast<std::byte*>(block), used, capacity);
  }

  // deallocate returns a block obtained from allocate() (or released from an EventData); any
  // thread. nullptr is a no-op. A block inside the region that is not live gives
  // errc::double_free (it is free or pending) or errc::foreign_pointer (not a block start);
  // the arena is left untouched. Outside the region the pointer must be a live fallback block
  // (checked against the set of them), else the same two errors.
  Result<void> deallocate(void* p) noexcept {
    if (put_cached(p, 0)) [[likely]] return {};
    return deallocate_general(p);
  }

  // drain_remote_frees reclaims the blocks other threads freed since the last drain and returns
  // how many there were. Owner thread only; a call from another thread does nothing.
  std::size_t drain_remote_frees() noexcept;

  // trim coalesces the blocks held in the hot caches back into the free lists, so that stats()
  // shows the fully merged state. Owner thread only.
  void trim() noexcept;

  // adopt_current_thread makes the calling thread the owner. The previous owner must have
  // stopped using the arena, and the handover must be synchronised by the caller (e.g. a
  // mutex or a thread join between the two threads' last and first calls).
  void adopt_current_thread() noexcept;

  // is_owner_thread tells whether the calling thread is the owner. Any thread.
  bool is_owner_thread() const noexcept;

  // contains tells whether `p` points into the region (not whether it is a live block).
  bool contains(const void* p) const noexcept {
    return static_cast<std::size_t>(reinterpret_cast<std::uintptr_t>(p) -
                                    reinterpret_cast<std::uintptr_t>(base_)) < capacity_;
  }

  // block_size returns the size of the block a request of `size` bytes gets from the region,
  // or 0 if size > capacity. Any thread.
  std::size_t block_size(std::size_t size) const noexcept {
    if (size > capacity_) return 0;
    return min_block_ << order_for(size);
  }

  // stats returns a snapshot of the bookkeeping. Owner thread only.
  ArenaStats stats() const;

  // config returns the configuration the arena was built with.
  const ArenaConfig& config() const noexcept { return config_; }
  std::size_t capacity() const noexcept { return capacity_; }
  std::size_t min_block() const noexcept { return min_block_; }

 private:
  friend class EventData;
  using FreeNode = detail::FreeNode;

  unsigned order_for(std::size_t size) const noexcept {
    // Branch-free: the top bit of (size - 1) | (min_block - 1) is the order's bit (size 0 counts
    // as 1), and that value is never 0, so count-leading-zeros needs no zero check.
    const std::size_t x = (size - (size != 0)) | (min_block_ - 1);
    return static_cast<unsigned>(64 - __builtin_clzll(x)) - min_shift_;
  }

  FreeNode* node_at(std::size_t index) const noexcept {
    return reinterpret_cast<FreeNode*>(base_ + (index << min_shift_));
  }
  // tag_of returns the tag byte of the block at p: tag_bias_ is tags_ - (base_ >> min_shift_),
  // which saves the fast paths a load and a subtraction.
  std::uint8_t* tag_of(const void* p) const noexcept {
    return reinterpret_cast<std::uint8_t*>(tag_bias_ + (reinterpret_cast<std::uintptr_t>(p) >> min_shift_));
  }
  std::size_t index_of(const void* p) const noexcept {
    return (reinterpret_cast<std::uintptr_t>(p) - reinterpret_cast<std::uintptr_t>(base_)) >> min_shift_;
  }

  // take_cached serves a request from the hot cache of its order, or returns nullptr and leaves
  // everything untouched: no remote frees to drain, no split, no debug checks (fast_max_ is 0
  // in debug mode). It and put_cached are inline: a steady stream of same-size requests is
  // served by them alone, and out of line the call, and the Result<void*> that a call must
  // return in memory, cost about as many instructions as the work itself.
  void* take_cached(std::size_t size, std::size_t* capacity) noexcept {
    // Size 0 wraps around and takes the general path, so the order needs no zero adjustment.
    if (size - 1 >= fast_max_) return nullptr;
    if (remote_head_.load(std::memory_order_relaxed) != nullptr) return nullptr;
    // bit_width(x) - min_shift_ as bsr(x) - (min_shift_ - 1): one instruction fewer.
    const unsigned order = static_cast<unsigned>(63 ^ __builtin_clzll((size - 1) | min_mask_)) - bsr_bias_;
    // The block freed last comes first. Besides being the one most likely in cache, it lives at
    // a fixed address: a stack top indexed by the order is written by a free and read by the
    // next allocation through addresses computed from different registers (the order comes
    // from the tag on one side and from the size on the other), which the CPU cannot forward
    // by renaming, so a free/allocate stream would pay two full store-to-load forwarding
    // latencies per pair through top -> slot -> top. The fixed slot's stores carry no data
    // from earlier loads, which breaks that chain.
    FreeNode* node = hot_front_;
    if (node != nullptr && hot_front_order_ == order) [[likely]] {
      hot_front_ = nullptr;
    } else {
      // A pop reads the stack slot, never the block: the block's first touch is the caller's,
      // and successive pops of one order do not wait for each other's cache misses, as they
      // would walking a list linked through the blocks.
      void** top = hot_top_[order];
      if (top == hot_base_[order]) return nullptr;
      --top;
      node = static_cast<FreeNode*>(*top);
      hot_top_[order] = top;
    }
    std::atomic_ref<std::uint8_t>(*tag_of(node))
        .store(static_cast<std::uint8_t>(detail::kTagAllocated | order), std::memory_order_relaxed);
    const std::size_t bytes = min_block_ << order;
    detail::arena_unpoison(node, bytes);
    *capacity = bytes;
    return node;
  }

  // put_cached puts a live block of a cacheable order into its hot cache when the caller is the
  // owner and there is room, after the same validation as free_block (`expected_capacity`, 0
  // if unknown, is what an EventData recorded); otherwise it returns false and leaves
  // everything untouched.
  bool put_cached(void* p, std::size_t expected_capacity) noexcept {
    // Rotating the offset right by min_shift_ turns a misaligned offset into a huge index, so
    // one comparison rejects both pointers outside the region and pointers between blocks.
    const std::size_t index =
        std::rotr(static_cast<std::size_t>(reinterpret_cast<std::uintptr_t>(p) - reinterpret_cast<std::uintptr_t>(base_)),
                  static_cast<int>(min_shift_));
    if (index >= min_blocks_) return false;
    // One comparison for "allocated, and of a cacheable order".
    std::uint8_t* const tag = tags_ + index;  // kept in a register across the stores below
    const std::uint8_t allocated = std::atomic_ref<std::uint8_t>(*tag).load(std::memory_order_relaxed);
    const unsigned order = static_cast<unsigned>(allocated) - detail::kTagAllocated;
    if (order >= hot_limit_) return false;
    const std::size_t bytes = min_block_ << order;
    if (expected_capacity != 0 && expected_capacity != bytes) return false;
    // The owner check comes before the first read of owner-only state (the hot cache). The raw
    // thread number suffices: a thread that has none yet (0) is not the owner, and the general
    // path gives it one.
    if (owner_.load(std::memory_order_relaxed) != detail::t_thread_id) return false;
    // The block becomes the front and the previous front moves to its order's stack. If that
    // stack is full, the front stays and the block goes onto its own order's stack; if that is
    // full too, nothing changes and the general path frees the block. (Otherwise a front whose
    // order filled up would stay put and send every later free down the general path.) The
    // stacks hold at most hot_depth_ blocks each; the front is the one block beyond that.
    // Neither block's memory is touched: a free costs its tag byte and a stack slot.
    auto* front = static_cast<FreeNode*>(p);
    unsigned front_order = order;
    if (FreeNode* prev = hot_front_; prev != nullptr) {
      unsigned prev_order = hot_front_order_;
      void** top = hot_top_[prev_order];
      if (top == hot_base_[prev_order + 1]) [[unlikely]] {  // full: the stacks are contiguous
        top = hot_top_[order];
        if (top == hot_base_[order + 1]) return false;
        std::swap(prev, front);  // the front stays, the block is stacked
        std::swap(prev_order, front_order);
      }
      *top = prev;
      hot_top_[prev_order] = top + 1;
    }
    hot_front_ = front;
    hot_front_order_ = front_order;
    detail::arena_poison(p, bytes);
    std::atomic_ref<std::uint8_t>(*tag).store(
        static_cast<std::uint8_t>(allocated + (detail::kTagCached - detail::kTagAllocated)), std::memory_order_relaxed);
    return true;
  }

  void* allocate_block(std::size_t size, std::size_t* capacity, errc* error);
  Result<void*> allocate_general(std::size_t size);
  std::size_t cached_count(unsigned order) const noexcept;
  std::size_t bytes_in_use() const noexcept;
  void push_cached(FreeNode* node, std::size_t index, unsigned order) noexcept;
  Result<void> deallocate_general(void* p) noexcept;
  void* allocate_slow(std::size_t size, unsigned order, std::size_t* capacity, errc* error);
  void* allocate_fallback(std::size_t bytes, errc* error);
  void call_pressure(std::size_t size, bool oversized);
  std::size_t stats_largest_free() const noexcept;
  void* take_block(unsigned order) noexcept;
  void* take_from_larger_cache(unsigned order) noexcept;
  errc free_block(void* p, std::size_t expected_capacity) noexcept;
  errc free_remote(std::size_t index, std::uint8_t tag, void* p) noexcept;
  errc classify_bad_free(std::size_t index, std::uint8_t tag) const noexcept;
  void release_to_lists(std::size_t index, unsigned order) noexcept;
  void reclaim(std::size_t index, unsigned order) noexcept;
  void push_free(std::size_t index, unsigned order) noexcept;
  void remove_free(FreeNode* node, unsigned order) noexcept;
  void release_block(void* p, std::size_t capacity) noexcept;  // EventData::reset
  void report(std::error_code error, const void* p, std::size_t capacity) noexcept;
  bool owner_check(const char* call) const noexcept;

  // Owner-thread state, laid out so that the hot path touches few cache lines.
  std::byte* base_ = nullptr;
  std::size_t capacity_ = 0;
  std::size_t min_block_ = 0;
  std::size_t min_blocks_ = 0;  // capacity_ / min_block_
  unsigned min_shift_ = 0;
  unsigned top_order_ = 0;
  unsigned hot_limit_ = 0;    // orders below this may be cached
  std::size_t fast_max_ = 0;  // requests of 1 to this many bytes may take the hot-cache path
  std::size_t min_mask_ = 0;  // min_block_ - 1
  unsigned bsr_bias_ = 0;     // min_shift_ - 1
  std::uint32_t hot_depth_ = 0;
  unsigned release_order_ = kMaxOrders;  // virtual zone: coalesced blocks of this order and up
  bool debug_ = false;
  bool in_pressure_ = false;
  std::uint8_t* tags_ = nullptr;  // one tag byte per min_block (see alloc/buddy_tags.hpp)
  std::uintptr_t tag_bias_ = 0;
  std::atomic<std::uint64_t> owner_{0};
  std::uint64_t nonempty_ = 0;  // bit k set iff free list k is non-empty
  std::size_t held_bytes_ = 0;   // taken from the free lists: allocated, pending or cached
  std::size_t high_water_ = 0;  // largest held_bytes_
  // hot_front_ is the block freed last into the hot caches (of order hot_front_order_), held
  // outside the per-order stacks: see take_cached for why. Counted as cached.
  FreeNode* hot_front_ = nullptr;
  unsigned hot_front_order_ = 0;
  // hot_top_[k] is one past the newest block of order k's hot cache, a stack of block pointers
  // spanning [hot_base_[k], hot_base_[k + 1]) in the side mapping after the tags: pushes and
  // pops touch the stack, not the blocks, and one comparison tests for empty or full. Orders
  // that are not cached have empty stacks (top == base) of no room.
  std::array<void**, kMaxOrders> hot_top_{};
  std::array<void**, kMaxOrders + 1> hot_base_{};
  std::array<FreeNode*, kMaxOrders> free_head_{};
  std::array<std::size_t, kMaxOrders> free_count_{};
  std::array<std::size_t, kMaxOrders> held_count_{};  // allocated + cached: fixed on the fast paths
  std::uint64_t exhaustion_count_ = 0;
  std::uint64_t remote_drained_ = 0;
  std::uint64_t release_calls_ = 0;
  std::size_t released_bytes_ = 0;
  std::atomic<std::uint64_t> errors_{0};

  ArenaConfig config_;
  std::unique_ptr<detail::FallbackHeap> fallback_;
  void* region_mapping_ = nullptr;
  std::size_t region_mapping_size_ = 0;
  std::size_t tags_mapping_size_ = 0;

  // Written by every thread that frees remotely: kept on its own cache line so that those
  // writes do not evict the owner's hot state.
  alignas(64) std::atomic<FreeNode*> remote_head_{nullptr};
  char pad_[64 - sizeof(std::atomic<FreeNode*>)] = {};
};

}  // namespace aem
