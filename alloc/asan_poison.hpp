// asan_poison.hpp — tell AddressSanitizer which arena bytes are free.
//
// The region is one big mapping to ASan, so without help it would let code read and write
// freed blocks, or run from one block into its neighbour. In ASan builds the arena poisons
// every free byte except the link words it keeps in free blocks, and unpoisons a block when
// it is handed out: use-after-free and overflows into free memory are then reported like heap
// errors. In other builds these are empty inline functions.
#pragma once

#include <aem/arena.hpp>  // AEM_ARENA_ASAN and the poisoning the inline hot-cache paths use

#include <cstddef>

namespace aem::detail {

inline void asan_poison(const void* p, std::size_t bytes) noexcept { arena_poison(p, bytes); }
inline void asan_unpoison(const void* p, std::size_t bytes) noexcept { arena_unpoison(p, bytes); }

}  // namespace aem::detail
