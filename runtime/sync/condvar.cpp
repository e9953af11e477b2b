// condvar.cpp — CondVar, on the hand-off protocol of handoff.hpp.
#include "runtime/sync/handoff.hpp"

#include <aem/condvar.hpp>
#include <aem/detail/wait_note.hpp>
#include <aem/mutex.hpp>

namespace aem {

using detail::Handoff;
using detail::WakeReason;
using detail::Waiter;
using detail::WakeChain;
using detail::wake;

void CondVar::wait(std::unique_lock<Mutex>& lock) { (void)wait_until(lock, Deadline::never()); }

Result<void> CondVar::wait(std::unique_lock<Mutex>& lock, Deadline deadline) {
  if (std::error_code refused = detail::refused_inline()) return refused;  // as Mutex::lock
  return wait_until(lock, deadline);
}

Result<void> CondVar::wait_until(std::unique_lock<Mutex>& lock, Deadline deadline) {
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
  detail::note_wait(detail::WaitKind::condvar, this);
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

}  // namespace aem
