// unwind.cpp — libunwind's local unwinder (async-signal-safe with UNW_LOCAL_ONLY, unlike glibc's
// backtrace()) started from a signal's context, from a capsule's saved registers, or here.
#define UNW_LOCAL_ONLY
#include "runtime/diag/unwind.hpp"

#include <libunwind.h>

#include <ucontext.h>

#include <cstring>

namespace aem::detail {
namespace {

// walk records the cursor's frames. Each address is the frame's instruction pointer as
// libunwind reports it: a return address for every frame but the first.
std::size_t walk(unw_cursor_t& cursor, std::uintptr_t* frames, std::size_t max) noexcept {
  std::size_t count = 0;
  do {
    unw_word_t ip = 0;
    if (unw_get_reg(&cursor, UNW_REG_IP, &ip) < 0 || ip == 0) break;
    frames[count++] = static_cast<std::uintptr_t>(ip);
  } while (count < max && unw_step(&cursor) > 0);
  return count;
}

}  // namespace

std::size_t unwind_signal_frames(void* ucontext, std::uintptr_t* frames, std::size_t max) noexcept {
  if (max == 0) return 0;
  unw_cursor_t cursor;
#if defined(__x86_64__)
  // On x86-64 libunwind's context is the ucontext_t the kernel handed the handler: start right
  // at the interrupted instruction.
  if (unw_init_local2(&cursor, static_cast<unw_context_t*>(ucontext), UNW_INIT_SIGNAL_FRAME) < 0) return 0;
  return walk(cursor, frames, max);
#else
  (void)ucontext;
  // Elsewhere: start here and skip the handler's frames up to the signal trampoline.
  unw_context_t context;
  if (unw_getcontext(&context) < 0 || unw_init_local(&cursor, &context) < 0) return 0;
  for (int depth = 0; depth < 16; ++depth) {
    if (unw_is_signal_frame(&cursor) > 0) {
      if (unw_step(&cursor) <= 0) return 0;
      return walk(cursor, frames, max);
    }
    if (unw_step(&cursor) <= 0) break;
  }
  return 0;
#endif
}

bool saved_context_unwinding() noexcept {
#if defined(__x86_64__)
  return true;
#else
  return false;
#endif
}

std::size_t unwind_saved_context(const Context& context, std::uintptr_t* frames, std::size_t max) noexcept {
#if defined(__x86_64__)
  if (context.saved == nullptr || max == 0) return 0;
  auto* const saved = static_cast<std::uintptr_t*>(context.saved);
  ucontext_t registers;
  std::memset(&registers, 0, sizeof registers);
  greg_t* const gregs = registers.uc_mcontext.gregs;
#if AEM_INLINE_SWITCH
  // context_switch (context.hpp) left: the resume address, then rbp, below the 128-byte red
  // zone it stepped over; the resume label's own unwind rules hold once rsp is back above it.
  // The other callee-saved registers were declared clobbered: the enclosing function saved
  // whatever it needed of them in its frame, where the unwind rules find it.
  gregs[REG_RIP] = static_cast<greg_t>(saved[0]);
  gregs[REG_RBP] = static_cast<greg_t>(saved[1]);
  gregs[REG_RSP] = static_cast<greg_t>(reinterpret_cast<std::uintptr_t>(saved + 2) + 128);
#else
  // Boost.Context's jump_fcontext (x86-64 SysV): MXCSR and the x87 control word, r12, r13, r14,
  // r15, rbx, rbp, then the return address; the stack pointer is above them.
  gregs[REG_R12] = static_cast<greg_t>(saved[1]);
  gregs[REG_R13] = static_cast<greg_t>(saved[2]);
  gregs[REG_R14] = static_cast<greg_t>(saved[3]);
  gregs[REG_R15] = static_cast<greg_t>(saved[4]);
  gregs[REG_RBX] = static_cast<greg_t>(saved[5]);
  gregs[REG_RBP] = static_cast<greg_t>(saved[6]);
  gregs[REG_RIP] = static_cast<greg_t>(saved[7]);
  gregs[REG_RSP] = static_cast<greg_t>(reinterpret_cast<std::uintptr_t>(saved + 8));
#endif
  unw_cursor_t cursor;
  if (unw_init_local(&cursor, reinterpret_cast<unw_context_t*>(&registers)) < 0) return 0;
  return walk(cursor, frames, max);
#else
  (void)context;
  (void)frames;
  (void)max;
  return 0;
#endif
}

std::size_t unwind_here(std::uintptr_t* frames, std::size_t max) noexcept {
  unw_context_t context;
  unw_cursor_t cursor;
  if (max == 0 || unw_getcontext(&context) < 0 || unw_init_local(&cursor, &context) < 0) return 0;
  if (unw_step(&cursor) <= 0) return 0;  // not this function
  return walk(cursor, frames, max);
}

}  // namespace aem::detail
