// context.hpp — the execution context of a capsule or of a core's scheduler, and the switch
// between two of them.
//
// This is the only interface to Boost.Context in aem: runtime/context.cpp is the one file that
// includes it. Debian's Boost.Context is the fcontext build, which has no sanitizer support, so
// the same file tells AddressSanitizer and ThreadSanitizer about every switch.
#pragma once

#include <cstddef>

namespace aem::detail {

// Context is one stack plus the registers saved when it was switched away from.
// A default-constructed Context describes the calling thread's own stack: it is filled in by
// the first switch away from it.
struct Context {
  void* saved = nullptr;             // fcontext_t of the suspended context
  void* stack_bottom = nullptr;      // lowest usable address (for the sanitizers)
  std::size_t stack_size = 0;
  void (*entry)(void*) = nullptr;    // for a fiber: called on its first switch-in; must not return
  void* entry_arg = nullptr;
  void* asan_fake_stack = nullptr;   // AddressSanitizer: fake-stack handle while suspended
  void* tsan_fiber = nullptr;        // ThreadSanitizer: fiber handle
  bool owns_tsan_fiber = false;
};

// context_make prepares `ctx` to run `entry(arg)` on the stack [stack_bottom, stack_bottom+size)
// the first time it is switched to. `entry` must never return: it ends by switching away.
// Call from the thread that will run the context: it switches into the new stack and straight
// back once, so that the fiber knows its own Context before its first real switch-in.
void context_make(Context& ctx, void* stack_bottom, std::size_t size, void (*entry)(void*), void* arg);

// context_adopt_thread fills `ctx` for the calling thread's own stack (a core's scheduler).
void context_adopt_thread(Context& ctx);

// context_release frees the sanitizer state of a fiber context that will never run again;
// call it before its stack is unmapped.
void context_release(Context& ctx);

// context_switch saves the running context into `from` and resumes `to`. It returns when some
// other context switches back to `from`. Precondition: `from` is the running context.
void context_switch(Context& from, Context& to);

}  // namespace aem::detail
