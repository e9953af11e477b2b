// fallback_heap.hpp — the general-heap (the process's malloc) blocks an arena hands out when its region
// cannot serve a request.
#pragma once

#include <aem/error.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

namespace aem::detail {

// FallbackHeap allocates fallback blocks from the process's allocator (general_alloc: glibc's
// malloc, or mimalloc when the program links it) and frees them from any thread.
//
// The arena tells its own blocks from fallback blocks by an address range check, so anything
// outside the region is presumed to be a fallback block. That presumption is checked exactly,
// against the set of live fallback blocks under a mutex, which also catches double frees.
// Cheaper checks do not hold up: an allocator's own "is this mine" query (mimalloc's
// mi_is_in_heap_region) exists only for some allocators and depends on where their memory
// lands (under ASan it falls outside mimalloc's map), and a header in front of each block would
// have to be read through the foreign pointer itself. Fallback is the exhaustion path, so the mutex is off the fast path.
class FallbackHeap {
 public:
  FallbackHeap() = default;
  FallbackHeap(const FallbackHeap&) = delete;
  FallbackHeap& operator=(const FallbackHeap&) = delete;

  // allocate returns `bytes` bytes aligned to `alignment` (a power of two), or nullptr.
  // Owner thread of the arena.
  void* allocate(std::size_t bytes, std::size_t alignment) noexcept;

  // free returns a fallback block to the allocator: errc::ok, or errc::double_free /
  // errc::foreign_pointer without touching the pointer. Any thread.
  errc free(void* p) noexcept;

  std::uint64_t count() const noexcept { return count_.load(std::memory_order_relaxed); }
  std::uint64_t oversize_count() const noexcept { return oversize_.load(std::memory_order_relaxed); }
  std::size_t live_bytes() const noexcept { return live_bytes_.load(std::memory_order_relaxed); }
  std::size_t live_blocks() const noexcept { return live_blocks_.load(std::memory_order_relaxed); }
  void count_oversize() noexcept { oversize_.fetch_add(1, std::memory_order_relaxed); }

 private:
  // A freed pointer is remembered until the allocator hands it out again, so that a second free is
  // reported as a double free rather than a foreign pointer; bounded to keep debug runs small.
  static constexpr std::size_t kFreedMemory = 4096;

  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> oversize_{0};
  std::atomic<std::size_t> live_bytes_{0};
  std::atomic<std::size_t> live_blocks_{0};
  std::mutex mutex_;                              // guards live_ and freed_
  std::unordered_map<void*, std::size_t> live_;  // pointer -> usable size
  std::unordered_set<void*> freed_;
};

}  // namespace aem::detail
