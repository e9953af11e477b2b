// asan_poison.hpp — tell AddressSanitizer which arena bytes are free.
//
// The region is one big mapping to ASan, so without help it would let code read and write
// freed blocks, or run from one block into its neighbour. In ASan builds the arena poisons
// every free byte except the link words it keeps in free blocks, and unpoisons a block when
// it is handed out: use-after-free and overflows into free memory are then reported like heap
// errors. In other builds these are empty inline functions.
#pragma once

#include <cstddef>

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

namespace aem::detail {

inline void asan_poison(const void* p, std::size_t bytes) noexcept {
#if defined(AEM_ARENA_ASAN)
  ASAN_POISON_MEMORY_REGION(p, bytes);
#else
  (void)p;
  (void)bytes;
#endif
}

inline void asan_unpoison(const void* p, std::size_t bytes) noexcept {
#if defined(AEM_ARENA_ASAN)
  ASAN_UNPOISON_MEMORY_REGION(p, bytes);
#else
  (void)p;
  (void)bytes;
#endif
}

}  // namespace aem::detail
