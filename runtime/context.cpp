// context.cpp — the one file that calls Boost.Context, and with it the sanitizer fiber hooks.
#include "runtime/context.hpp"

#include <boost/context/detail/fcontext.hpp>

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

#if AEM_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if AEM_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace aem::detail {
namespace bc = boost::context::detail;

namespace {

// Prime is what context_make hands a new fiber on the priming switch (see context_make).
struct Prime {
  Context* self;
  Context* from;
};

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
  self.entry(self.entry_arg);
  __builtin_unreachable();  // entry switches away for good; it never returns
}

}  // namespace

void context_make(Context& ctx, void* stack_bottom, std::size_t size, void (*entry)(void*), void* arg) {
  ctx.stack_bottom = stack_bottom;
  ctx.stack_size = size;
  ctx.entry = entry;
  ctx.entry_arg = arg;
#if AEM_TSAN
  ctx.tsan_fiber = __tsan_create_fiber(0);
  ctx.owns_tsan_fiber = true;
#endif
  // Prime the fiber: it runs up to its first real switch-in, having learnt its Context.
  Context caller;
  context_adopt_thread(caller);
  Prime prime{&ctx, &caller};
  before_switch(caller, ctx);
  const bc::transfer_t t = bc::jump_fcontext(bc::make_fcontext(static_cast<char*>(stack_bottom) + size, size, &trampoline), &prime);
  ctx.saved = t.fctx;
  after_switch(caller, ctx);
}

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

void context_switch(Context& from, Context& to) {
  before_switch(from, to);
  const bc::transfer_t t = bc::jump_fcontext(to.saved, &from);
  // Back in `from`: t.data is the Context of whoever resumed us, t.fctx where it stopped.
  auto* previous = static_cast<Context*>(t.data);
  previous->saved = t.fctx;
  after_switch(from, *previous);
}

}  // namespace aem::detail
