// fault_injection.hpp — a TESTING FACILITY, not API for services: makes the library's own
// allocations and mappings fail on demand, so that the tests can run every failure path of a
// scenario (after Seastar's allocation failure injector).
//
// Each site is one kind of operation the library does on its own behalf. A test arms the
// injector with a set of sites and a number k: the k-th operation (1-based) counted across
// those sites from then on fails, once, exactly as the real operation fails (the same errno,
// nullptr or error code, through the same handling code). count() says how many operations
// were seen since arm(), so a test can first run a scenario with k = 0 (count only) to learn
// N, then run it again for k = 1..N.
//
//   namespace faults = aem::detail::faults;
//   faults::arm(faults::all_sites, 0);   // count only
//   scenario();
//   const std::uint64_t n = faults::count();
//   for (std::uint64_t k = 1; k <= n; ++k) {
//     faults::arm(faults::all_sites, k);
//     scenario();                          // the k-th operation fails
//     faults::disarm();
//   }
//
// Cost when disarmed (always, outside tests): one relaxed load of a global that is zero and a
// predictable branch at each site; the counting path is out of line. Thread-safe: the cores
// are threads, and the k-th operation is counted across all of them.
#pragma once

#include <atomic>
#include <cstdint>

namespace aem::detail::faults {

// Site names one kind of operation that can be made to fail; the values are mask bits.
enum class Site : std::uint32_t {
  // The mmap of a capsule's guarded stack (pool
  // growth, and the initial pool at a core's start) fails with ENOMEM, reported as
  // errc::map_count_limit.
  stack_map = 1u << 0,
  // The mmap of an arena's region or tag table fails with ENOMEM;
  // the arena's constructor throws std::system_error(ENOMEM), a core's start fails with it.
  arena_region = 1u << 1,
  // The general-heap block an exhausted
  // arena falls back to is refused (nullptr): the allocation fails with errc::out_of_memory.
  fallback_heap = 1u << 2,
  // Taking a receive buffer from the arena (ring creation, the
  // replacement of a handed-over buffer, a refill) fails with errc::out_of_memory: creation
  // fails, or the slot stays empty until refill() (receives starve, then resume).
  buffer_ring = 1u << 3,
  // An io_uring submission entry: io_uring_get_sqe finds the submission queue
  // full (nullptr): the backend submits what is queued and takes the entry again.
  sqe = 1u << 4,
};

inline constexpr std::uint32_t all_sites = 0x1f;

constexpr std::uint32_t operator|(Site a, Site b) noexcept {
  return static_cast<std::uint32_t>(a) | static_cast<std::uint32_t>(b);
}
constexpr std::uint32_t operator|(std::uint32_t a, Site b) noexcept { return a | static_cast<std::uint32_t>(b); }

// site_name names a site ("stack_map", ...), or "?" for anything else.
constexpr const char* site_name(Site site) noexcept {
  switch (site) {
    case Site::stack_map: return "stack_map";
    case Site::arena_region: return "arena_region";
    case Site::fallback_heap: return "fallback_heap";
    case Site::buffer_ring: return "buffer_ring";
    case Site::sqe: return "sqe";
  }
  return "?";
}

namespace state {
inline std::atomic<std::uint32_t> mask{0};       // sites armed; 0 = off (the only hot read)
inline std::atomic<std::uint64_t> seen{0};       // operations counted since arm()
inline std::atomic<std::uint64_t> target{0};     // which one fails (1-based), 0 = none
inline std::atomic<std::uint32_t> failed_site{0};  // the site that failed, 0 = none yet
}  // namespace state

// arm counts, from now on, the operations of the sites in `site_mask` and makes the k-th
// (1-based) fail, once; k = 0 only counts. Resets count() and failed().
inline void arm(std::uint32_t site_mask, std::uint64_t k) noexcept {
  state::mask.store(0, std::memory_order_seq_cst);
  state::seen.store(0, std::memory_order_seq_cst);
  state::target.store(k, std::memory_order_seq_cst);
  state::failed_site.store(0, std::memory_order_seq_cst);
  state::mask.store(site_mask & all_sites, std::memory_order_seq_cst);
}
inline void arm(Site site, std::uint64_t k) noexcept { arm(static_cast<std::uint32_t>(site), k); }

// disarm stops counting and failing; count() and failed() keep their values.
inline void disarm() noexcept { state::mask.store(0, std::memory_order_seq_cst); }

// count is the number of operations of the armed sites seen since arm().
inline std::uint64_t count() noexcept { return state::seen.load(std::memory_order_seq_cst); }

// failed says whether the armed failure happened, and at which site (0 if not yet).
inline std::uint32_t failed() noexcept { return state::failed_site.load(std::memory_order_seq_cst); }

// hit_slow counts one operation of an armed site and says whether it is the one to fail.
[[gnu::noinline, gnu::cold]] inline bool hit_slow(Site site) noexcept {
  const std::uint64_t n = state::seen.fetch_add(1, std::memory_order_acq_rel) + 1;
  if (n != state::target.load(std::memory_order_acquire)) return false;
  state::failed_site.store(static_cast<std::uint32_t>(site), std::memory_order_release);
  return true;
}

// hit is what a site calls before its operation: true means "fail this one as the real
// operation would". Off: one relaxed load and a branch.
inline bool hit(Site site) noexcept {
  if (__builtin_expect((state::mask.load(std::memory_order_relaxed) & static_cast<std::uint32_t>(site)) == 0, 1)) {
    return false;
  }
  return hit_slow(site);
}

}  // namespace aem::detail::faults
