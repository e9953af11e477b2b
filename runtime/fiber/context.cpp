// context.cpp — making, releasing and (outside x86-64) switching contexts, the floating-point
// control state of own_fp_env contexts, and the sanitizer fiber hooks. On x86-64 the switch
// itself is inline (context.hpp); elsewhere it is Boost.Context's fcontext, and this is the one
// file that includes it.
#include "runtime/fiber/context.hpp"

#if !AEM_INLINE_SWITCH
#include <boost/context/detail/fcontext.hpp>
#endif

#include <cstdint>
#include <cstdlib>

#if AEM_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if AEM_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace aem::detail {
namespace {

inline void before_switch([[maybe_unused]] Context& from, [[maybe_unused]] Context& to) {
#if AEM_ASAN
  __sanitizer_start_switch_fiber(&from.asan_fake_stack, to.stack_bottom, to.stack_size);
#endif
#if AEM_TSAN
  __tsan_switch_to_fiber(to.tsan_fiber, 0);
#endif
}

// after_switch runs in the context that was just resumed (`self`), with `previous` the one
// that switched to it.
inline void after_switch([[maybe_unused]] Context& self, [[maybe_unused]] Context& previous) {
#if AEM_ASAN
  const void* bottom = nullptr;
  std::size_t size = 0;
  __sanitizer_finish_switch_fiber(self.asan_fake_stack, &bottom, &size);
  // A thread's own stack is learnt here, the first time it is switched away from.
  if (previous.stack_bottom == nullptr) {
    previous.stack_bottom = const_cast<void*>(bottom);
    previous.stack_size = size;
  }
#endif
}

void init_fiber([[maybe_unused]] Context& ctx, void* stack_bottom, std::size_t size, void (*entry)(void*), void* arg) {
  ctx.stack_bottom = stack_bottom;
  ctx.stack_size = size;
  ctx.entry = entry;
  ctx.entry_arg = arg;
#if AEM_TSAN
  ctx.tsan_fiber = __tsan_create_fiber(0);
  ctx.owns_tsan_fiber = true;
#endif
}

}  // namespace

#if AEM_FIBER_HOOKS
void context_before_switch(Context& from, Context& to) { before_switch(from, to); }
void context_after_switch(Context& self, Context& previous) { after_switch(self, previous); }
#endif

namespace {
// The state the thread's shared contexts use, saved while a context with its own runs.
thread_local FpControl t_shared_fp;
}  // namespace

#if defined(__x86_64__)
FpControl fp_read() noexcept {
  FpControl state;
  asm volatile("stmxcsr %0\n\tfnstcw %1" : "=m"(state.mxcsr), "=m"(state.x87_control));
  return state;
}

void fp_load(const FpControl& state) noexcept {
  asm volatile("ldmxcsr %0\n\tfldcw %1" : : "m"(state.mxcsr), "m"(state.x87_control));
}
#elif defined(__aarch64__)
// fcontext's AArch64 switch saves neither FPCR nor FPSR: the switch carries them for an
// own_fp_env context (context_switch below), as the inline switch does on x86-64.
FpControl fp_read() noexcept {
  FpControl state;
  asm volatile("mrs %0, fpcr\n\tmrs %1, fpsr" : "=r"(state.fpcr), "=r"(state.fpsr));
  return state;
}

void fp_load(const FpControl& state) noexcept {
  asm volatile("msr fpcr, %0\n\tmsr fpsr, %1" : : "r"(state.fpcr), "r"(state.fpsr) : "memory");
}
#else
// Elsewhere: no access to the state written for this architecture yet, so own_fp_env keeps
// nothing of its own (whatever fcontext carries, it carries).
FpControl fp_read() noexcept { return {}; }
void fp_load(const FpControl&) noexcept {}
#endif

void fp_env_leave(Context& from) noexcept { (from.own_fp_env ? from.fp : t_shared_fp) = fp_read(); }

void fp_env_enter(const Context& self) noexcept { fp_load(self.own_fp_env ? self.fp : t_shared_fp); }

void fp_env_swap(Context& from, const Context& to) noexcept {
  fp_env_leave(from);
  fp_env_enter(to);
}

FpControl fp_shared(const Context& running) noexcept { return running.own_fp_env ? t_shared_fp : fp_read(); }

void context_adopt_thread(Context& ctx) {
  ctx = Context{};
#if AEM_TSAN
  ctx.tsan_fiber = __tsan_get_current_fiber();
#endif
}

void context_release([[maybe_unused]] Context& ctx) {
#if AEM_ASAN
  // A suspended fiber leaves its frames' redzones poisoned; once the stack is unmapped that
  // shadow would poison whatever is mapped there next (heap included).
  if (ctx.stack_bottom != nullptr && ctx.entry != nullptr) __asan_unpoison_memory_region(ctx.stack_bottom, ctx.stack_size);
#endif
#if AEM_TSAN
  if (ctx.owns_tsan_fiber && ctx.tsan_fiber != nullptr) __tsan_destroy_fiber(ctx.tsan_fiber);
#endif
  ctx.tsan_fiber = nullptr;
  ctx.owns_tsan_fiber = false;
}

#if AEM_INLINE_SWITCH

// aem_context_entry is where a fiber's first switch-in lands (through aem_context_start), with
// `previous` the context that switched to it.
extern "C" [[noreturn, gnu::visibility("hidden"), gnu::used]] void aem_context_entry(Context* previous, Context* self) noexcept {
  after_switch(*self, *previous);  // the floating-point state came with the switch (fp_env_swap)
  self->entry(self->entry_arg);
  std::abort();  // entry switches away for good; it never returns
}

// aem_context_start: the resume address of a fresh fiber. The switch in left rdi = the
// previous Context and rsp pointing at the fiber's own Context*. No frame above it: the
// unwinder stops here.
asm(R"(
  .text
  .p2align 4
  .type aem_context_start, @function
aem_context_start:
  .cfi_startproc
  .cfi_undefined rip
)" AEM_ENDBR R"(
  movq (%rsp), %rsi
  andq $-16, %rsp
  xorl %ebp, %ebp
  call aem_context_entry
  ud2
  .cfi_endproc
  .size aem_context_start, .-aem_context_start
)");
extern "C" void aem_context_start();

void context_make(Context& ctx, void* stack_bottom, std::size_t size, void (*entry)(void*), void* arg) {
  init_fiber(ctx, stack_bottom, size, entry, arg);
  // What a switch in pops: the resume address, then (aem_context_start's) the Context.
  auto top = (reinterpret_cast<std::uintptr_t>(stack_bottom) + size) & ~std::uintptr_t{15};
  auto** sp = reinterpret_cast<void**>(top) - 2;
  sp[0] = reinterpret_cast<void*>(&aem_context_start);
  sp[1] = &ctx;
  ctx.saved = sp;
}

#else  // Boost.Context fcontext

namespace bc = boost::context::detail;
namespace {

// Prime is what context_make hands a new fiber on the priming switch (see context_make).
struct Prime {
  Context* self;
  Context* from;
};

// trampoline is where a fiber starts. context_make switches in once to prime it: the fiber
// learns its own Context then and switches straight back. So every later switch passes only
// `&from` as the transfer data, whether it enters the fiber for the first time or not.
void trampoline(bc::transfer_t t) {
  const Prime prime = *static_cast<Prime*>(t.data);
  Context& self = *prime.self;
  after_switch(self, *prime.from);
  before_switch(self, *prime.from);
  t = bc::jump_fcontext(t.fctx, nullptr);  // back to context_make
  // The first real switch in.
  auto* from = static_cast<Context*>(t.data);
  from->saved = t.fctx;
  after_switch(self, *from);
  if (self.own_fp_env || from->own_fp_env) fp_env_enter(self);
  self.entry(self.entry_arg);
  std::abort();  // entry switches away for good; it never returns
}

}  // namespace

void context_make(Context& ctx, void* stack_bottom, std::size_t size, void (*entry)(void*), void* arg) {
  init_fiber(ctx, stack_bottom, size, entry, arg);
  Context caller;
  context_adopt_thread(caller);
  Prime prime{&ctx, &caller};
  before_switch(caller, ctx);
  const bc::transfer_t t = bc::jump_fcontext(bc::make_fcontext(static_cast<char*>(stack_bottom) + size, size, &trampoline), &prime);
  ctx.saved = t.fctx;
  after_switch(caller, ctx);
}

void context_switch(Context& from, Context& to) {
  before_switch(from, to);
  // The floating-point side is the inline switch's (context.hpp): on x86-64 fcontext also
  // saves MXCSR and the x87 control word per context, which agrees with it; on AArch64 this is
  // the only thing that carries FPCR/FPSR.
  if (from.own_fp_env || to.own_fp_env) [[unlikely]] fp_env_leave(from);
  const bc::transfer_t t = bc::jump_fcontext(to.saved, &from);
  // Back in `from`: t.data is the Context of whoever resumed us, t.fctx where it stopped.
  auto* previous = static_cast<Context*>(t.data);
  previous->saved = t.fctx;
  if (from.own_fp_env || previous->own_fp_env) [[unlikely]] fp_env_enter(from);
  after_switch(from, *previous);
}

#endif

}  // namespace aem::detail
