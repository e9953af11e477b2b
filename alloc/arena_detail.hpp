// arena_detail.hpp — what the arena's translation units share beyond <aem/arena.hpp>: the
// assignment of thread numbers.
#pragma once

#include <aem/arena.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace aem::detail {

// current_thread_id gives the calling thread its number (detail::t_thread_id, in
// <aem/arena.hpp>) on first use.
extern std::atomic<std::uint64_t> g_next_thread_id;

inline std::uint64_t current_thread_id() noexcept {
  std::uint64_t id = t_thread_id;
  if (id == 0) [[unlikely]] {
    id = g_next_thread_id.fetch_add(1, std::memory_order_relaxed);
    t_thread_id = id;
  }
  return id;
}

}  // namespace aem::detail
