#include "alloc/fallback_heap.hpp"

#include <aem/detail/fault_injection.hpp>

#include "alloc/general.hpp"

#include <malloc.h>

namespace aem::detail {

void* FallbackHeap::allocate(std::size_t bytes, std::size_t alignment) noexcept {
  // An injected failure (tests) is the allocator's nullptr.
  void* p = faults::hit(faults::Site::fallback_heap) ? nullptr : general_alloc(bytes, alignment);
  if (p == nullptr) return nullptr;
  const std::size_t usable = ::malloc_usable_size(p);  // glibc's, mimalloc's or a sanitizer's
  try {
    std::lock_guard lock(mutex_);
    live_.emplace(p, usable);
    freed_.erase(p);
  } catch (...) {  // no memory for the bookkeeping: refuse the block rather than lose track
    general_free(p);
    return nullptr;
  }
  count_.fetch_add(1, std::memory_order_relaxed);
  live_bytes_.fetch_add(usable, std::memory_order_relaxed);
  live_blocks_.fetch_add(1, std::memory_order_relaxed);
  return p;
}

errc FallbackHeap::free(void* p) noexcept {
  std::size_t usable = 0;
  {
    std::lock_guard lock(mutex_);
    auto it = live_.find(p);
    if (it == live_.end()) return freed_.count(p) != 0 ? errc::double_free : errc::foreign_pointer;
    usable = it->second;
    live_.erase(it);
    try {
      if (freed_.size() >= kFreedMemory) freed_.clear();
      freed_.insert(p);
    } catch (...) {  // only the diagnostic memory is lost
    }
  }
  live_bytes_.fetch_sub(usable, std::memory_order_relaxed);
  live_blocks_.fetch_sub(1, std::memory_order_relaxed);
  general_free(p);
  return errc::ok;
}

}  // namespace aem::detail
