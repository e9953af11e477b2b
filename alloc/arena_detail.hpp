// arena_detail.hpp — what the arena's translation units share: the header of a free block and
// the calling thread's identity.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace aem::detail {

// FreeNode is the header a free block carries in its first bytes. In a free list `prev` links
// backwards (except at the head, where it is meaningless); in a hot cache the second word is
// the number of nodes from this one to the end of the cache, so that the length is known from
// the head alone and popping a block writes nothing but the list head; the remote-free list
// uses only `next`.
struct FreeNode {
  FreeNode* next;
  union {
    FreeNode* prev;
    std::size_t depth;
  };
};

// g_hot_end ends every hot cache: a node of depth 0 that is never written. An empty cache's
// head is this node rather than nullptr, so a free reads the depth of the head without a null
// test, and an allocation tests the depth it would have tested the pointer for.
extern constinit FreeNode g_hot_end;

// Thread identity: a per-thread number that is never reused. pthread ids and TLS addresses are
// recycled when a thread exits, which would silently make a new thread the owner.
// initial-exec TLS keeps the owner check to one %fs-relative load even in -fPIC code.
// constinit tells every user that no dynamic initialisation can be pending, so the access needs
// no TLS wrapper call.
extern constinit thread_local std::uint64_t t_thread_id __attribute__((tls_model("initial-exec")));
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
