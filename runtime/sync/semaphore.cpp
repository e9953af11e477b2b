// semaphore.cpp — Semaphore, on the hand-off protocol of handoff.hpp.
#include "runtime/sync/handoff.hpp"

#include <aem/detail/wait_note.hpp>
#include <aem/semaphore.hpp>

namespace aem {

using detail::Handoff;
using detail::Waiter;
using detail::WakeChain;
using detail::settle;

void Semaphore::acquire() { (void)acquire_until(Deadline::never()); }

Result<void> Semaphore::acquire(Deadline deadline) {
  if (std::error_code refused = detail::refused_inline()) return refused;  // as Mutex::lock
  return acquire_until(deadline);
}

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
  detail::note_wait(detail::WaitKind::semaphore, this);
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

}  // namespace aem
