// task_memory.hpp — memory for tasks that do not fit a capsule's frame or cross cores.
#pragma once

#include <cstddef>

namespace aem::detail {

// task_allocate returns memory from the process's allocator (general_alloc), aligned to at least
// alignof(std::max_align_t); never nullptr: throws std::bad_alloc.
void* task_allocate(std::size_t size, std::size_t align);
// task_free releases memory from task_allocate. Any thread.
void task_free(void* p) noexcept;

}  // namespace aem::detail
