// blocking.cpp — the capsule's side of aem::blocking: hand the call to the pool, suspend, and
// settle with the pool who lets go of it when the deadline or the shutdown comes first.
#include "runtime/offload/blocking_pool.hpp"

#include "runtime/sched/core.hpp"
#include "runtime/sched/runtime_impl.hpp"

#include <aem/blocking.hpp>

namespace aem::detail {
namespace {

// await_late waits, past the caller's deadline or the shutdown, for a call that is running:
// the pool thread wakes the capsule once it has finished (see finish in blocking_pool.cpp).
// Not interruptible: the call works on the caller's memory.
void await_late(Core* core, BlockingCall* call) noexcept {
  std::uint8_t expected = 0;
  if (call->late.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) core->suspend();
}

}  // namespace

std::error_code blocking_refusal() noexcept {
  Core* core = Core::current_core();
  if (core == nullptr || core->current() == nullptr) return Core::suspension_refused();
  if (core->runtime().stopping() || core->runtime().offload() == nullptr) return make_error_code(errc::shutting_down);
  return {};
}

std::error_code run_blocking(BlockingCall* call, Deadline deadline, BlockingWait wait) noexcept {
  Core* core = Core::current_core();
  CapsuleControl* self = core->current();
  MetricsCell& metrics = core->metrics();
  BlockingPool& pool = BlockingPool::of(core->runtime());
  call->priority = self->priority;
  call->core = core->index();
  if (deadline.expired()) {  // never run a call whose caller will not wait for it
    metrics.count_blocking_timeout();
    release(call);
    return make_error_code(errc::timed_out);
  }
  if (std::error_code refused = pool.enqueue(call)) {
    if (refused == errc::blocking_queue_full) metrics.count_blocking_refusal();
    release(call);
    return refused;
  }
  metrics.count_blocking_call();
  self->wait_kind = WaitKind::blocking;  // for the diagnostics: the call record names its site
  self->wait_object = call;
  const WakeReason reason = call->waiter.wait(deadline);
  if (reason == WakeReason::notified) {
    if (call->state.load(std::memory_order_acquire) == BlockingCall::State::dropped) {  // by the stop
      release(call);
      return make_error_code(errc::shutting_down);
    }
    metrics.note_blocking_queue_wait(call->started_at - call->queued_at);
    return {};
  }
  const std::error_code ended = make_error_code(reason == WakeReason::timed_out ? errc::timed_out : errc::shutting_down);
  if (reason == WakeReason::timed_out) metrics.count_blocking_timeout();
  if (pool.withdraw(call)) {  // it never runs
    metrics.note_blocking_queue_wait(Clock::now() - call->queued_at);
    release(call);
    return ended;
  }
  if (wait == BlockingWait::finish) {
    await_late(core, call);
    return {};
  }
  release(call);  // the pool thread lets go last and destroys the result there
  return ended;
}

}  // namespace aem::detail
