// stack.hpp — guarded capsule stacks, and the fault handler that names the capsule whose stack
// overflowed.
#pragma once

#include <aem/result.hpp>

#include <cstddef>
#include <cstdint>

namespace aem::detail {

// StackMapping is one capsule's memory: [guard page | usable stack ... | top reserve].
// The top reserve holds the capsule's control block, so one spawn touches one mapping.
struct StackMapping {
  void* base = nullptr;        // start of the mapping (the guard page)
  std::size_t total = 0;       // bytes mapped
  void* usable = nullptr;      // lowest usable byte, just above the guard page
  std::size_t usable_size = 0; // stack bytes, excluding the top reserve
  void* top_reserve = nullptr; // where the control block lives
};

// map_guarded_stack maps `stack_size` bytes of stack (rounded up to pages) plus a PROT_NONE
// guard page below and `reserve` bytes above. Errors: errc::map_count_limit when the kernel's
// vm.max_map_count is reached, else the errno of mmap/mprotect.
Result<StackMapping> map_guarded_stack(std::size_t stack_size, std::size_t reserve) noexcept;

// unmap_stack releases a mapping made by map_guarded_stack.
void unmap_stack(StackMapping& mapping) noexcept;

// kGuardSlack: a frame larger than the guard page can step over it, so a fault up to this far
// below the guard page still counts as an overflow of the stack above (GuardWatch::guard_low).
inline constexpr std::size_t kGuardSlack = 64 * 1024;

// GuardWatch is what the fault handler needs to know about the running capsule.
struct GuardWatch {
  std::uintptr_t guard_low = 0;   // lowest address counted as an overflow of this stack
  std::uintptr_t guard_high = 0;  // one past the guard page
  std::uint64_t capsule_id = 0;
  std::size_t stack_kib = 0;
};

// GuardLookup returns the guard of the capsule running on the calling thread, or nullptr.
// It runs inside the fault handler: it may only read thread-local state.
using GuardLookup = const GuardWatch* (*)() noexcept;

// set_guard_lookup installs how the fault handler finds the running capsule (the scheduler
// knows it already, so a switch costs the handler nothing).
void set_guard_lookup(GuardLookup lookup) noexcept;

// install_overflow_handler installs the process-wide SIGSEGV/SIGBUS handler (once) and gives
// the calling thread an alternate signal stack, so a fault on a guard page can still be
// reported. Call on each core thread before it runs capsules.
Result<void> install_overflow_handler() noexcept;

// remove_thread_altstack frees the calling thread's alternate signal stack.
void remove_thread_altstack() noexcept;

}  // namespace aem::detail
