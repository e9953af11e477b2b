#include "alloc/task_memory.hpp"

#include "alloc/general.hpp"

#include <new>

namespace aem::detail {

void* task_allocate(std::size_t size, std::size_t align) {
  void* p = general_alloc(size, align < alignof(std::max_align_t) ? alignof(std::max_align_t) : align);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void task_free(void* p) noexcept { general_free(p); }

}  // namespace aem::detail
