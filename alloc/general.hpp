// general.hpp — the runtime's general-purpose allocations (registrations, control blocks,
// containers, fallback blocks) come from the process's own allocator (malloc): the library
// never chooses the allocator of the program that links it. A program that wants mimalloc
// (thread-local free lists, cheap cross-thread frees) links it process-wide (aem::mimalloc),
// and these calls then reach it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace aem::detail {

// kLargestGeneralAllocation is the largest request passed on to the allocator; larger ones are
// refused here (nullptr, like an exhausted heap). glibc refuses more than PTRDIFF_MAX itself,
// but the sanitizers' allocators abort the process above their 1 TiB limit instead of
// returning nullptr, which would turn an out-of-memory error into a crash in those builds.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define AEM_SANITIZER_ALLOCATOR 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define AEM_SANITIZER_ALLOCATOR 1
#endif
#endif
#if defined(AEM_SANITIZER_ALLOCATOR)
inline constexpr std::size_t kLargestGeneralAllocation = std::size_t{1} << 40;
#else
inline constexpr std::size_t kLargestGeneralAllocation = PTRDIFF_MAX;
#endif

// general_alloc returns `size` bytes aligned to `alignment` (a power of two), or nullptr.
// Any thread.
inline void* general_alloc(std::size_t size,
                           std::size_t alignment = alignof(std::max_align_t)) noexcept {
  if (size > kLargestGeneralAllocation) return nullptr;
  if (alignment <= alignof(std::max_align_t)) return std::malloc(size);
  void* p = nullptr;  // posix_memalign: any size (aligned_alloc wants a multiple of alignment)
  return ::posix_memalign(&p, alignment, size) == 0 ? p : nullptr;
}

// general_free returns memory from general_alloc (or GeneralAllocator); nullptr is a no-op.
// Any thread, not necessarily the allocating one.
inline void general_free(void* p) noexcept { std::free(p); }

// GeneralAllocator is a std-compatible allocator over general_alloc, for the runtime's
// containers:
//   std::vector<Registration, aem::detail::GeneralAllocator<Registration>> registrations;
// It is stateless: all instances compare equal and memory may be freed through any of them.
template <typename T>
struct GeneralAllocator {
  using value_type = T;

  GeneralAllocator() noexcept = default;
  template <typename U>
  GeneralAllocator(const GeneralAllocator<U>&) noexcept {}  // NOLINT: rebinding is implicit by design

  // allocate returns storage for n objects; throws std::bad_alloc when memory is exhausted.
  T* allocate(std::size_t n) {
    if (n > static_cast<std::size_t>(-1) / sizeof(T)) throw std::bad_alloc();
    void* p = general_alloc(n * sizeof(T), alignof(T));
    if (p == nullptr) throw std::bad_alloc();
    return static_cast<T*>(p);
  }

  // deallocate frees storage from allocate.
  void deallocate(T* p, std::size_t) noexcept { general_free(p); }

  template <typename U>
  bool operator==(const GeneralAllocator<U>&) const noexcept { return true; }
};

}  // namespace aem::detail
