#include "alloc/region.hpp"

#include <aem/detail/fault_injection.hpp>

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

namespace aem::detail {

namespace {

// MADV_POPULATE_WRITE appeared in Linux 5.14; older kernels get EINVAL and we touch the pages.
constexpr int kMadvPopulateWrite = 23;

std::size_t round_up(std::size_t n, std::size_t to) noexcept { return (n + to - 1) & ~(to - 1); }

}  // namespace

std::size_t page_size() noexcept {
  static const std::size_t size = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return size;
}

Mapping map_region(std::size_t bytes, std::size_t alignment, bool populate, bool huge_pages) noexcept {
  const std::size_t page = page_size();
  if (alignment < page) alignment = page;
  const std::size_t length = round_up(bytes, page);
  // Over-map by the alignment and cut the excess off both ends: mmap only promises pages.
  const std::size_t padded = alignment > page ? length + alignment : length;
  // An injected failure (tests) is the mmap's ENOMEM.
  void* raw = faults::hit(faults::Site::arena_region)
                  ? (errno = ENOMEM, MAP_FAILED)
                  : ::mmap(nullptr, padded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) return {};
  auto* start = static_cast<std::byte*>(raw);
  auto* aligned = reinterpret_cast<std::byte*>(round_up(reinterpret_cast<std::uintptr_t>(start), alignment));
  if (padded != length) {
    if (aligned != start) ::munmap(start, static_cast<std::size_t>(aligned - start));
    std::byte* end = aligned + length;
    std::byte* padded_end = start + padded;
    if (padded_end != end) ::munmap(end, static_cast<std::size_t>(padded_end - end));
  }
  if (huge_pages) ::madvise(aligned, length, MADV_HUGEPAGE);
  if (populate) {
    const int saved = errno;
    if (::madvise(aligned, length, kMadvPopulateWrite) != 0) {
      for (std::size_t off = 0; off < length; off += page) {
        *reinterpret_cast<volatile std::byte*>(aligned + off) = std::byte{0};
      }
    }
    errno = saved;
  }
  return {aligned, length, aligned};
}

void unmap_region(const Mapping& mapping) noexcept {
  if (mapping.start != nullptr) ::munmap(mapping.start, mapping.length);
}

std::size_t release_pages(void* p, std::size_t bytes) noexcept {
  const std::size_t page = page_size();
  auto first = round_up(reinterpret_cast<std::uintptr_t>(p), page);
  auto last = (reinterpret_cast<std::uintptr_t>(p) + bytes) & ~(page - 1);
  if (last <= first) return 0;
  if (::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED) != 0) return 0;
  return last - first;
}

}  // namespace aem::detail
