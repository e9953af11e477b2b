#include "alloc/task_memory.hpp"

#include <mimalloc.h>

#include <new>

namespace aem::detail {

// Sanitizer builds use the C++ allocator: the sanitizers intercept it, but not mimalloc, whose
// cross-thread frees they would see as races and whose blocks they could not check.
#if defined(AEM_SANITIZE_BUILD)

void* task_allocate(std::size_t size, std::size_t align) {
  return ::operator new(size, std::align_val_t{align < alignof(std::max_align_t) ? alignof(std::max_align_t) : align});
}

void task_free(void* p) noexcept { ::operator delete(p, std::align_val_t{alignof(std::max_align_t)}); }

#else

void* task_allocate(std::size_t size, std::size_t align) {
  void* p = mi_malloc_aligned(size, align < alignof(std::max_align_t) ? alignof(std::max_align_t) : align);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void task_free(void* p) noexcept { mi_free(p); }

#endif

}  // namespace aem::detail
