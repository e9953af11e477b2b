// handoff.hpp — the hand-off protocol that every synchronisation primitive follows (Channel<T>
// included, through detail::await_handoff), and the helpers the primitives share.
//
// Protocol (a refinement of the one in detail/waiter.hpp):
//  * A waiter points Waiter::slot at a hand-off record on its stack (Handoff here, the Channel's
//    SendOp/ReceiveOp there), queues the Waiter under the primitive's SpinLock, releases the
//    lock and calls wait().
//  * A notifier pops the Waiter under the SpinLock and thereby commits the resource (mutex
//    ownership, a permit, a notification, a value) to it. It releases the SpinLock *before*
//    calling notify(): notify() may make a system call to wake a sleeping core, and a spin lock
//    held across that (worse: across the preemption that the wake-up often causes on an
//    oversubscribed machine) makes every other core spin for a whole time slice.
//  * notify() succeeds: the waiter wakes with WakeReason::notified and owns the resource; it
//    never needs the SpinLock again, and the notifier does not touch the Waiter any more.
//  * notify() fails: the wait already ended by its deadline or a shutdown. The waiter takes the
//    SpinLock to unlink itself and finds that it was popped; the resource is committed to it all
//    the same (the hand-off wins the race), but the notifier may still be inside notify(), so the
//    waiter waits for the notifier to set Handoff::released before its Waiter goes out of scope.
//    A waiter still linked removes itself and reports timed_out (or unwinds on shutdown).
// So a resource is never lost, duplicated or given to a capsule that has stopped waiting for it.
#pragma once

#include "runtime/sched/core.hpp"

#include <aem/channel.hpp>  // detail::await_handoff
#include <aem/detail/waiter.hpp>
#include <aem/error.hpp>
#include <aem/result.hpp>

#include <atomic>

namespace aem::detail {


// Handoff is what Waiter::slot points to for the primitives of this file.
struct Handoff {
  std::atomic<bool> released{false};  // the notifier is done with the Waiter (failed notify)
};

// current_capsule returns the running capsule's control block, or nullptr on a plain thread.
inline void* current_capsule() noexcept {
  Core* core = Core::current_core();
  return core != nullptr ? core->current() : nullptr;
}

// wake notifies a waiter popped under the SpinLock, after the SpinLock is released.
inline void wake(Waiter* waiter) noexcept {
  auto* handoff = static_cast<Handoff*>(waiter->slot);  // read first: after a successful
  if (!waiter->notify()) handoff->released.store(true, std::memory_order_release);  // notify it may be gone
}

// WakeChain collects waiters popped under the SpinLock, chained through Waiter::next (a popped
// Waiter is no longer in any WaitList), to wake them after the SpinLock is released.
class WakeChain {
 public:
  void add(Waiter* waiter) noexcept {
    waiter->next = nullptr;
    if (tail_ != nullptr) tail_->next = waiter;
    else head_ = waiter;
    tail_ = waiter;
  }
  void wake_all() noexcept {
    for (Waiter* waiter = head_; waiter != nullptr;) {
      Waiter* next = waiter->next;  // read before the wake: the waiter may be gone after it
      wake(waiter);
      waiter = next;
    }
  }

 private:
  Waiter* head_ = nullptr;
  Waiter* tail_ = nullptr;
};

// refused_inline is detail::inline_refusal (declared with Channel) for the primitives of this
// folder, inline: errc::inline_handler_blocked, counted, when the caller is an inline handler on
// a core's dispatcher; no error in a capsule, and none on a plain thread, where the Waiter
// throws errc::not_in_capsule as the primitives document.
inline std::error_code refused_inline() noexcept {
  Core* core = Core::current_core();
  if (core == nullptr || core->current() != nullptr) return {};
  const std::error_code refused = Core::suspension_refused();
  return refused == errc::inline_handler_blocked ? refused : std::error_code();
}

// popped_after_wait settles a wait that did not end by a notify. If the waiter is still queued
// it unlinks it and returns false. If a notifier popped it (the resource is committed to it) it
// waits until that notifier is done with the Waiter and returns true.
inline bool popped_after_wait(SpinLock& guard, WaitList& list, Waiter& waiter, const Handoff& handoff) noexcept {
  guard.lock();
  const bool queued = waiter.linked;
  list.remove(&waiter);
  guard.unlock();
  if (queued) return false;
  await_handoff(handoff.released);
  return true;
}

// handed_over tells whether a wait that ended for `reason` got the resource.
inline bool handed_over(WakeReason reason, SpinLock& guard, WaitList& list, Waiter& waiter,
                 const Handoff& handoff) noexcept {
  return reason == WakeReason::notified || popped_after_wait(guard, list, waiter, handoff);
}

// outcome turns the end of a wait into the primitive's result: success when the resource was
// handed over, else timed_out, or an unwind on shutdown.
inline Result<void> outcome(bool handed, WakeReason reason) {
  if (handed) return {};
  if (reason == WakeReason::interrupted) throw_forced_unwind();
  return errc::timed_out;
}

// settle is outcome(handed_over(...)) for the primitives that do nothing in between.
inline Result<void> settle(WakeReason reason, SpinLock& guard, WaitList& list, Waiter& waiter,
                    const Handoff& handoff) {
  return outcome(handed_over(reason, guard, list, waiter, handoff), reason);
}

}  // namespace aem::detail
