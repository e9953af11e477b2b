#include "runtime/fdio/io_wait.hpp"

#include "runtime/sched/core.hpp"
#include "runtime/sched/runtime_impl.hpp"

#include <cerrno>

namespace aem::detail {
namespace {

// IoWait is the completion record of one awaited operation.
struct IoWait {
  Completion completion;
  CapsuleControl* capsule = nullptr;
  IoCancelSlot* cancel = nullptr;
  int result = 0;
  bool done = false;
};

void on_complete(Completion* completion, int result, std::uint32_t flags) noexcept {
  auto* wait = reinterpret_cast<IoWait*>(completion);  // completion is IoWait's first member
  if ((flags & kCompletionMore) != 0) return;  // awaited operations are single-shot
  wait->result = result;
  wait->done = true;
  if (wait->cancel == nullptr || !wait->cancel->wake_pending.exchange(true, std::memory_order_acq_rel)) {
    Core::wake(wait->capsule);
  }
}

// take_owed_wake is the last step of a cancellable wait: from now on nobody may wake the
// capsule for this slot, and a canceller that flipped wake_pending first is still on its
// way to wake us — that wake-up is taken here, not left to hit the capsule's next suspension.
void take_owed_wake(Core* core, IoCancelSlot* cancel) noexcept {
  if (cancel->wake_pending.exchange(true, std::memory_order_acq_rel)) core->suspend();
}

// await_cancellable suspends until the operation completes. A canceller's wake-up makes the
// capsule ask its own core's backend to cancel the operation (only the owning core may), then
// wait on for the final completion.
void await_cancellable(Core* core, IoWait& wait) noexcept {
  bool cancel_issued = false;
  for (;;) {
    core->suspend();
    wait.cancel->wake_pending.store(false, std::memory_order_seq_cst);  // the next wake is owed again
    if (wait.done) break;
    if (!cancel_issued && wait.cancel->requested.load(std::memory_order_acquire)) {
      core->backend().cancel(&wait.completion);
      cancel_issued = true;
    }
  }
  take_owed_wake(core, wait.cancel);
}

}  // namespace

int perform(const IoRequest& request, Deadline deadline, IoCancelSlot* cancel) noexcept {
  Core* core = Core::current_core();
  if (core == nullptr) return kNotInCapsule;
  if (core->current() == nullptr) return core->events()->note_inline_block() ? kInlineBlocked : kNotInCapsule;
  if (core->runtime().stopping()) {
    if (cancel != nullptr) take_owed_wake(core, cancel);
    return kShuttingDown;
  }
  IoWait wait;
  wait.capsule = core->current();
  wait.cancel = cancel;
  wait.completion.complete = &on_complete;
  __kernel_timespec timeout{};
  if (!deadline.is_never()) {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_point().time_since_epoch()).count();
    timeout.tv_sec = ns < 0 ? 0 : ns / 1'000'000'000;
    timeout.tv_nsec = ns < 0 ? 0 : ns % 1'000'000'000;
  }
  core->backend().submit(request, &wait.completion, deadline.is_never() ? nullptr : &timeout);
  wait.capsule->wait_kind = WaitKind::io;  // for the diagnostics: the descriptor and the operation
  wait.capsule->wait_arg = (static_cast<std::intptr_t>(request.fd) << 8) | static_cast<std::intptr_t>(request.opcode);
  // Not interruptible: the record must outlive the operation. At shutdown the core cancels
  // every operation, so this wait still ends.
  if (cancel != nullptr) await_cancellable(core, wait);
  else while (!wait.done) core->suspend();
  wait.capsule->wait_kind = WaitKind::none;
  return wait.result;
}

}  // namespace aem::detail
