// unwind.hpp — return addresses of a stack, for the stall report and the capsule dump: of the
// code a signal interrupted (async-signal-safe), of a suspended capsule from its saved
// registers, and of the calling thread.
#pragma once

#include "runtime/fiber/context.hpp"

#include <cstddef>
#include <cstdint>

namespace aem::detail {

// kMaxFrames bounds every backtrace the diagnostics take.
inline constexpr std::size_t kMaxFrames = 48;

// unwind_signal_frames fills `frames` with the return addresses of the code that the signal
// whose handler received `ucontext` interrupted, innermost first, and returns how many.
// Async-signal-safe (libunwind, UNW_LOCAL_ONLY): call from that signal handler only.
std::size_t unwind_signal_frames(void* ucontext, std::uintptr_t* frames, std::size_t max) noexcept;

// unwind_saved_context does the same for a context that is switched out (a suspended or ready
// capsule), from the registers its last switch saved. The context must not run meanwhile: call
// on its core's thread, or while that core is known to be elsewhere. Returns 0 where the
// architecture's saved layout is not known here (see saved_context_unwinding).
std::size_t unwind_saved_context(const Context& context, std::uintptr_t* frames, std::size_t max) noexcept;

// saved_context_unwinding tells whether unwind_saved_context works on this architecture.
bool saved_context_unwinding() noexcept;

// unwind_here returns the calling thread's own return addresses, without this function's.
std::size_t unwind_here(std::uintptr_t* frames, std::size_t max) noexcept;

}  // namespace aem::detail
