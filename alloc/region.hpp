// region.hpp — anonymous memory mappings for the arena's region and side table.
#pragma once

#include <cstddef>

namespace aem::detail {

// Mapping is one anonymous mapping, possibly larger than the aligned range in use.
struct Mapping {
  void* start = nullptr;        // what munmap gets
  std::size_t length = 0;
  std::byte* aligned = nullptr;  // start of the usable, aligned range
};

// page_size returns the system page size (cached after the first call).
std::size_t page_size() noexcept;

// map_region maps `bytes` (rounded up to pages) of private anonymous memory whose usable start
// is aligned to `alignment` (a power of two). With `populate` every page is faulted in before
// it returns; with `huge_pages` the range is marked MADV_HUGEPAGE first (a hint: ignored where
// transparent huge pages are off). On failure the result's `start` is null and errno is set.
Mapping map_region(std::size_t bytes, std::size_t alignment, bool populate, bool huge_pages) noexcept;

// unmap_region undoes map_region (a null mapping is ignored).
void unmap_region(const Mapping& mapping) noexcept;

// release_pages gives the whole pages inside [p, p + bytes) back to the OS (MADV_DONTNEED):
// they read as zero on the next touch. Returns the number of bytes released.
std::size_t release_pages(void* p, std::size_t bytes) noexcept;

}  // namespace aem::detail
