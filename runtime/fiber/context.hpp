// context.hpp — the execution context of a capsule or of a core's scheduler, and the switch
// between two of them.
//
// On x86-64 the switch is inline assembly, inlined into the scheduler's code paths. Why not a
// call into an assembly routine (Boost.Context's jump_fcontext): such a routine is entered by a
// `call` and left by a `jmp` into the other stack, so every switch leaves one return-stack-buffer
// entry behind and each `ret` that follows in the resumed context is predicted from the wrong
// stack: on a yield that costs two or three mispredicted returns per switch, several times the
// switch itself. Inline, a switch executes no call and no return, and the resumed context's
// returns meet the entries its own calls pushed.
//
// The floating-point control state (MXCSR, the x87 control word) belongs to the core's thread,
// as in Go, Seastar and marl: the inline switch does not save it, because storing and loading
// those two registers costs more than the rest of the switch together (measured here: 17 ns a
// round trip with them, 4 ns without). A capsule that needs a rounding mode or flush-to-zero of
// its own is spawned with SpawnOptions::own_fp_env: switches into and out of such a capsule
// save and restore the state (fp_env_leave / fp_env_enter), so the others never see its changes.
//
// Elsewhere (other architectures, or with the CMake option AEM_BOOST_CONTEXT_SWITCH, which the
// ASan+UBSan CI build uses so both paths are tested) context.cpp switches with Boost.Context's
// fcontext. On x86-64 fcontext saves MXCSR and the x87 control word on every switch; on AArch64
// it does not save FPCR/FPSR (only x19-x30 and d8-d15), so there too the state belongs to the
// thread. Either way context.cpp's fcontext switch does what the inline one does for an
// own_fp_env context (fp_env_leave / fp_env_enter).
// Debian's Boost.Context has no sanitizer support, and neither has the inline switch, so both
// tell AddressSanitizer and ThreadSanitizer about every switch (context.cpp).
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define AEM_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define AEM_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(AEM_ASAN)
#define AEM_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__) && !defined(AEM_TSAN)
#define AEM_TSAN 1
#endif
#if AEM_ASAN || AEM_TSAN
#define AEM_FIBER_HOOKS 1
#endif
#if defined(__x86_64__) && !defined(AEM_BOOST_CONTEXT_SWITCH)
#define AEM_INLINE_SWITCH 1
#endif
// AEM_ENDBR marks where an indirect jump may land, in top-level asm.
#if defined(__CET__)
#define AEM_ENDBR "endbr64\n"
#else
#define AEM_ENDBR ""
#endif

namespace aem::detail {

// FpControl is the floating-point control state a switch may have to carry. x86-64: MXCSR (SSE
// rounding, flush-to-zero, exception masks and flags) and the x87 control word. AArch64: FPCR
// (rounding, flush-to-zero, default NaN, trap enables) and FPSR (the cumulative exception flags,
// which x86-64 keeps in MXCSR).
struct FpControl {
#if defined(__aarch64__)
  std::uint64_t fpcr = 0;
  std::uint64_t fpsr = 0;
#else
  std::uint32_t mxcsr = 0;
  std::uint16_t x87_control = 0;
#endif
};

// Context is one stack plus the registers saved when it was switched away from.
// A default-constructed Context describes the calling thread's own stack: it is filled in by
// the first switch away from it.
struct Context {
  // The suspended context's stack pointer. Inline switch: its resume address is on top, with
  // the frame pointer above it. fcontext: the fcontext_t.
  void* saved = nullptr;
  void* stack_bottom = nullptr;      // lowest usable address (for the sanitizers)
  std::size_t stack_size = 0;
  void (*entry)(void*) = nullptr;    // for a fiber: called on its first switch-in; must not return
  void* entry_arg = nullptr;
  void* asan_fake_stack = nullptr;   // AddressSanitizer: fake-stack handle while suspended
  void* tsan_fiber = nullptr;        // ThreadSanitizer: fiber handle
  bool owns_tsan_fiber = false;
  // own_fp_env: this context keeps a floating-point control state of its own, saved in `fp`
  // while it is switched out (see the file comment). Off: it shares its thread's.
  bool own_fp_env = false;
  FpControl fp;
};

// context_make prepares `ctx` to run `entry(arg)` on the stack [stack_bottom, stack_bottom+size)
// the first time it is switched to. `entry` must never return: it ends by switching away.
// Call from the thread that will run the context.
void context_make(Context& ctx, void* stack_bottom, std::size_t size, void (*entry)(void*), void* arg);

// context_adopt_thread fills `ctx` for the calling thread's own stack (a core's scheduler).
void context_adopt_thread(Context& ctx);

// context_release frees the sanitizer state of a fiber context that will never run again;
// call it before its stack is unmapped.
void context_release(Context& ctx);

// fp_read returns the calling thread's floating-point control state; fp_load installs one.
FpControl fp_read() noexcept;
void fp_load(const FpControl& state) noexcept;

// fp_env_leave / fp_env_enter: the floating-point side of a switch that involves a context with
// its own state (from.own_fp_env or to.own_fp_env). fp_env_leave runs in `from` before it leaves
// and saves the state in use: `from`'s own, or else the one its thread's shared contexts use.
// fp_env_enter runs in `self` once resumed and installs `self`'s own, or the shared one.
void fp_env_leave(Context& from) noexcept;
void fp_env_enter(const Context& self) noexcept;
// fp_env_swap is both halves at once, in `from` before it leaves for `to`: it saves the state
// in use as fp_env_leave does and installs the one `to` runs with. The inline switch uses it, so
// a resumed context has nothing left to check: on a yield that is four loads and branches
// fewer per switch.
void fp_env_swap(Context& from, const Context& to) noexcept;
// fp_shared returns the state the calling thread's shared contexts run with, whichever
// context is running (for a context that starts with an own state: it starts from that one).
FpControl fp_shared(const Context& running) noexcept;

#if AEM_FIBER_HOOKS
// The sanitizers' side of a switch: before_switch runs in `from` just before it leaves for
// `to`; after_switch runs in `self` once it is resumed, `previous` being who resumed it.
void context_before_switch(Context& from, Context& to);
void context_after_switch(Context& self, Context& previous);
#endif

// context_switch saves the running context into `from` and resumes `to`. It returns when some
// other context switches back to `from`. Precondition: `from` is the running context.
#if AEM_INLINE_SWITCH
[[gnu::always_inline]] inline void context_switch(Context& from, Context& to) {
#if AEM_FIBER_HOOKS
  context_before_switch(from, to);
#endif
  if (from.own_fp_env || to.own_fp_env) [[unlikely]] fp_env_swap(from, to);
  // The registers the ABI says a call preserves are declared clobbered, so the compiler keeps
  // nothing live in them across the switch (it saves what it needs in the enclosing function),
  // except rbp (it may be the frame pointer, which cannot be clobbered): saved by hand. Below it
  // is the resume address, so a switch in is `pop; jmp`: one indirect jump, predicted from
  // branch history. The red zone is stepped over first: the enclosing function may keep data
  // in it.
  register Context* previous asm("rdi") = &from;
  register Context* target asm("rsi") = &to;
  asm volatile(
      "leaq -128(%%rsp), %%rsp\n\t"
      "pushq %%rbp\n\t"
      "leaq 1f(%%rip), %%rax\n\t"
      "pushq %%rax\n\t"
      "movq %%rsp, (%%rdi)\n\t"  // from.saved (offset 0)
      "movq (%%rsi), %%rsp\n\t"  // to.saved
      "popq %%rax\n\t"
      "jmp *%%rax\n"
      "1:\n\t"
#if defined(__CET__)
      "endbr64\n\t"
#endif
      "popq %%rbp\n\t"
      "leaq 128(%%rsp), %%rsp\n\t"
      // rdi now holds the Context of whoever switched to us: see aem_context_start.
      : "+r"(previous), "+r"(target)
      :
      : "rax", "rbx", "rcx", "rdx", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",  //
        "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",                    //
        "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15",              //
#if defined(__AVX512F__)
        "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23",  //
        "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31",  //
        "k1", "k2", "k3", "k4", "k5", "k6", "k7",                                  //
#endif
        "st", "st(1)", "st(2)", "st(3)", "st(4)", "st(5)", "st(6)", "st(7)",  //
        "mm0", "mm1", "mm2", "mm3", "mm4", "mm5", "mm6", "mm7",              //
        "fpsr", "cc", "memory");
  // Whoever switched to us installed our floating-point state already (fp_env_swap), on the
  // first switch-in of a context too.
#if AEM_FIBER_HOOKS
  // rdi holds the resuming context only until the next call: a register variable is bound to
  // its register for the asm alone, and a sanitizer's instrumentation is a call. Copied first.
  Context* const resumed_from = previous;
  context_after_switch(from, *resumed_from);
#else
  (void)previous;
#endif
}
#else
void context_switch(Context& from, Context& to);
#endif

}  // namespace aem::detail
