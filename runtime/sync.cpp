// sync.cpp — the non-template synchronisation primitives (Mutex, CondVar, Semaphore, WaitGroup)
// and the hand-off helper that Channel<T> shares with them.
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
#include "runtime/core.hpp"
#include "runtime/priority_inheritance.hpp"

#include <aem/capsule.hpp>
#include <aem/channel.hpp>
#include <aem/condvar.hpp>
#include <aem/error.hpp>
#include <aem/mutex.hpp>
#include <aem/semaphore.hpp>
#include <aem/wait_group.hpp>

#include <atomic>
#include <stdexcept>
#include <system_error>
#include <thread>

namespace aem {
namespace detail {

void await_handoff(const std::atomic<bool>& released) noexcept {
  // The notifier runs on another thread (a capsule on our own core cannot be between its pop
  // and its notify(): it does not suspend there), a few instructions from setting the flag.
  for (unsigned spins = 0; !released.load(std::memory_order_acquire); ++spins) {
    if (spins < 128) {
      __builtin_ia32_pause();
    } else {
      this_capsule::yield();     // let this core's other capsules run
      std::this_thread::yield();  // and the notifier's thread, if it shares our CPU
    }
  }
}

}  // namespace detail

namespace {

using detail::WakeReason;
using detail::Waiter;

// Handoff is what Waiter::slot points to for the primitives of this file.
struct Handoff {
  std::atomic<bool> released{false};  // the notifier is done with the Waiter (failed notify)
};

// current_capsule returns the running capsule's control block, or nullptr on a plain thread.
void* current_capsule() noexcept {
  detail::Core* core = detail::Core::current_core();
  return core != nullptr ? core->current() : nullptr;
}

// wake notifies a waiter popped under the SpinLock, after the SpinLock is released.
void wake(Waiter* waiter) noexcept {
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

// popped_after_wait settles a wait that did not end by a notify. If the waiter is still queued
// it unlinks it and returns false. If a notifier popped it (the resource is committed to it) it
// waits until that notifier is done with the Waiter and returns true.
bool popped_after_wait(detail::SpinLock& guard, detail::WaitList& list, Waiter& waiter, const Handoff& handoff) noexcept {
  guard.lock();
  const bool queued = waiter.linked;
  list.remove(&waiter);
  guard.unlock();
  if (queued) return false;
  detail::await_handoff(handoff.released);
  return true;
}

// handed_over tells whether a wait that ended for `reason` got the resource.
bool handed_over(WakeReason reason, detail::SpinLock& guard, detail::WaitList& list, Waiter& waiter,
                 const Handoff& handoff) noexcept {
  return reason == WakeReason::notified || popped_after_wait(guard, list, waiter, handoff);
}

// outcome turns the end of a wait into the primitive's result: success when the resource was
// handed over, else timed_out, or an unwind on shutdown.
Result<void> outcome(bool handed, WakeReason reason) {
  if (handed) return {};
  if (reason == WakeReason::interrupted) detail::throw_forced_unwind();
  return errc::timed_out;
}

// settle is outcome(handed_over(...)) for the primitives that do nothing in between.
Result<void> settle(WakeReason reason, detail::SpinLock& guard, detail::WaitList& list, Waiter& waiter,
                    const Handoff& handoff) {
  return outcome(handed_over(reason, guard, list, waiter, handoff), reason);
}

}  // namespace

// ---- Mutex -------------------------------------------------------------------------------

void Mutex::lock() { (void)lock_until(Deadline::never()); }

Result<void> Mutex::lock(Deadline deadline) { return lock_until(deadline); }

Result<void> Mutex::lock_until(Deadline deadline) {
  using detail::PriorityInheritance;
  Waiter waiter;  // throws errc::not_in_capsule on a plain thread
  auto& self = *static_cast<detail::CapsuleControl*>(waiter.capsule);
  Handoff handoff;
  waiter.slot = &handoff;
  guard_.lock();
  if (!locked_) {
    locked_ = true;
    owner_ = waiter.capsule;
    guard_.unlock();
    PriorityInheritance::held(self, *this);
    return {};
  }
  waiter.lent = static_cast<std::uint8_t>(self.priority);
  waiters_.push_back(&waiter);
  void* const holder = owner_;
  guard_.unlock();
  PriorityInheritance::blocked(self, *this, holder);
  const WakeReason reason = waiter.wait(deadline);
  // Handed over means unlock() made us the owner already (owner_ set by the unlocker).
  const bool owned = handed_over(reason, guard_, waiters_, waiter, handoff);
  PriorityInheritance::unblocked(self, *this, owned);
  return outcome(owned, reason);
}

bool Mutex::try_lock() noexcept {
  auto* self = static_cast<detail::CapsuleControl*>(current_capsule());
  guard_.lock();
  const bool acquired = !locked_;
  if (acquired) {
    locked_ = true;
    owner_ = self;
  }
  guard_.unlock();
  if (acquired && self != nullptr) detail::PriorityInheritance::held(*self, *this);
  return acquired;
}

void Mutex::unlock() noexcept {
  // The caller holds the mutex, so nobody else writes owner_ now. Its link in the caller's list
  // of held mutexes is let go of before the next owner may take it over.
  auto* self = static_cast<detail::CapsuleControl*>(owner_);
  if (self != nullptr) detail::PriorityInheritance::released(*self, *this);
  guard_.lock();
  Waiter* next = waiters_.pop_front();
  if (next != nullptr) {
    owner_ = next->capsule;  // ownership passes directly: the mutex stays locked
  } else {
    locked_ = false;
    owner_ = nullptr;
  }
  guard_.unlock();
  // Back to its own priority, or to what waiters of the mutexes it still holds lend it.
  if (self != nullptr && self->priority != self->base_priority) self->core->restore_priority(*self);
  if (next != nullptr) wake(next);
}

// ---- CondVar -----------------------------------------------------------------------------

void CondVar::wait(std::unique_lock<Mutex>& lock) { (void)wait(lock, Deadline::never()); }

Result<void> CondVar::wait(std::unique_lock<Mutex>& lock, Deadline deadline) {
  Waiter waiter;  // throws errc::not_in_capsule on a plain thread
  if (!lock.owns_lock()) {
    throw std::system_error(std::make_error_code(std::errc::operation_not_permitted), "aem::CondVar::wait: lock not held");
  }
  Handoff handoff;
  waiter.slot = &handoff;
  // Queue before releasing the mutex: a notify from now on finds us (even one that comes
  // before we suspend: the Waiter then does not sleep).
  guard_.lock();
  waiters_.push_back(&waiter);
  guard_.unlock();
  lock.unlock();
  const WakeReason reason = waiter.wait(deadline);
  const bool notified = reason == WakeReason::notified || popped_after_wait(guard_, waiters_, waiter, handoff);
  if (!notified && reason == WakeReason::interrupted) detail::throw_forced_unwind();  // lock stays released
  lock.lock();
  if (!notified) return errc::timed_out;
  return {};
}

void CondVar::notify_one() noexcept {
  guard_.lock();
  Waiter* waiter = waiters_.pop_front();
  guard_.unlock();
  if (waiter != nullptr) wake(waiter);
}

void CondVar::notify_all() noexcept {
  WakeChain chain;
  guard_.lock();
  while (Waiter* waiter = waiters_.pop_front()) chain.add(waiter);
  guard_.unlock();
  chain.wake_all();
}

// ---- Semaphore ---------------------------------------------------------------------------

void Semaphore::acquire() { (void)acquire_until(Deadline::never()); }

Result<void> Semaphore::acquire(Deadline deadline) { return acquire_until(deadline); }

Result<void> Semaphore::acquire_until(Deadline deadline) {
  Waiter waiter;  // throws errc::not_in_capsule on a plain thread
  Handoff handoff;
  waiter.slot = &handoff;
  guard_.lock();
  if (count_ > 0) {  // count_ > 0 implies nobody waits: no barging past the queue
    --count_;
    guard_.unlock();
    return {};
  }
  waiters_.push_back(&waiter);
  guard_.unlock();
  // Handed over means release() gave us a permit.
  return settle(waiter.wait(deadline), guard_, waiters_, waiter, handoff);
}

bool Semaphore::try_acquire() noexcept {
  guard_.lock();
  const bool acquired = count_ > 0;
  if (acquired) --count_;
  guard_.unlock();
  return acquired;
}

void Semaphore::release(std::size_t n) noexcept {
  WakeChain chain;
  guard_.lock();
  for (; n > 0; --n) {
    Waiter* waiter = waiters_.pop_front();
    if (waiter == nullptr) break;
    chain.add(waiter);  // a permit for each waiter, first come first served
  }
  count_ += n;
  guard_.unlock();
  chain.wake_all();
}

std::size_t Semaphore::count() const noexcept {
  guard_.lock();
  const std::size_t count = count_;
  guard_.unlock();
  return count;
}

// ---- WaitGroup ---------------------------------------------------------------------------

void WaitGroup::add(std::int64_t delta) {
  WakeChain chain;
  guard_.lock();
  if (count_ + delta < 0) {
    guard_.unlock();
    throw std::logic_error("aem::WaitGroup: negative count (more done() than add())");
  }
  count_ += delta;
  if (count_ == 0) {
    while (Waiter* waiter = waiters_.pop_front()) chain.add(waiter);
  }
  guard_.unlock();
  chain.wake_all();
}

void WaitGroup::wait() { (void)wait_until(Deadline::never()); }

Result<void> WaitGroup::wait(Deadline deadline) { return wait_until(deadline); }

Result<void> WaitGroup::wait_until(Deadline deadline) {
  Waiter waiter;  // throws errc::not_in_capsule on a plain thread
  Handoff handoff;
  waiter.slot = &handoff;
  guard_.lock();
  if (count_ == 0) {
    guard_.unlock();
    return {};
  }
  waiters_.push_back(&waiter);
  guard_.unlock();
  return settle(waiter.wait(deadline), guard_, waiters_, waiter, handoff);
}

std::int64_t WaitGroup::count() const noexcept {
  guard_.lock();
  const std::int64_t count = count_;
  guard_.unlock();
  return count;
}

}  // namespace aem
