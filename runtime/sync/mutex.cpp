// mutex.cpp — Mutex, on the hand-off protocol of handoff.hpp.
#include "runtime/sync/handoff.hpp"
#include "runtime/sched/priority_inheritance.hpp"

#include <aem/mutex.hpp>

namespace aem {

using detail::Handoff;
using detail::WakeReason;
using detail::Waiter;
using detail::current_capsule;
using detail::wake;

void Mutex::lock() { (void)lock_until(Deadline::never()); }

// The calls with a deadline return their errors, so an inline handler's is returned too (the
// plain lock() throws it from the Waiter).
Result<void> Mutex::lock(Deadline deadline) {
  if (std::error_code refused = detail::refused_inline()) return refused;
  return lock_until(deadline);
}

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
  self.wait_kind = detail::WaitKind::mutex;  // for the diagnostics: the holder is read from owner_
  self.wait_object = this;
  // The holder then: the one that owns it at a dump may be a later one (docs/diagnostics.md).
  self.wait_arg = holder != nullptr ? static_cast<std::intptr_t>(static_cast<detail::CapsuleControl*>(holder)->guard.capsule_id) : 0;
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

}  // namespace aem
