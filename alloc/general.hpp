// general.hpp — the runtime's general-purpose allocations (registrations, control blocks,
// containers) go through mimalloc: thread-local free lists, cheap cross-thread frees, and one
// allocator for everything that is not event data.
#pragma once

#include <mimalloc.h>

#include <cstddef>
#include <new>

namespace aem::detail {

// general_alloc returns `size` bytes aligned to `alignment` (a power of two), or nullptr.
// Any thread.
inline void* general_alloc(std::size_t size,
                           std::size_t alignment = alignof(std::max_align_t)) noexcept {
  return alignment <= alignof(std::max_align_t) ? mi_malloc(size) : mi_malloc_aligned(size, alignment);
}

// general_free returns memory from general_alloc (or MiAllocator); nullptr is a no-op.
// Any thread, not necessarily the allocating one.
inline void general_free(void* p) noexcept { mi_free(p); }

// MiAllocator is a std-compatible allocator over mimalloc, for the runtime's containers:
//   std::vector<Registration, aem::detail::MiAllocator<Registration>> registrations;
// It is stateless: all instances compare equal and memory may be freed through any of them.
template <typename T>
struct MiAllocator {
  using value_type = T;

  MiAllocator() noexcept = default;
  template <typename U>
  MiAllocator(const MiAllocator<U>&) noexcept {}  // NOLINT: rebinding is implicit by design

  // allocate returns storage for n objects; throws std::bad_alloc when memory is exhausted.
  T* allocate(std::size_t n) {
    if constexpr (alignof(T) > alignof(std::max_align_t)) {
      if (n > static_cast<std::size_t>(-1) / sizeof(T)) throw std::bad_alloc();
      return static_cast<T*>(mi_new_aligned(n * sizeof(T), alignof(T)));
    } else {
      return static_cast<T*>(mi_new_n(n, sizeof(T)));
    }
  }

  // deallocate frees storage from allocate.
  void deallocate(T* p, std::size_t) noexcept { mi_free(p); }

  template <typename U>
  bool operator==(const MiAllocator<U>&) const noexcept { return true; }
};

}  // namespace aem::detail
