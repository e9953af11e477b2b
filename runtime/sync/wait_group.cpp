// wait_group.cpp — WaitGroup, on the hand-off protocol of handoff.hpp.
#include "runtime/sync/handoff.hpp"

#include <aem/detail/wait_note.hpp>
#include <aem/wait_group.hpp>

namespace aem {

using detail::Handoff;
using detail::Waiter;
using detail::WakeChain;
using detail::settle;

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

Result<void> WaitGroup::wait(Deadline deadline) {
  if (std::error_code refused = detail::refused_inline()) return refused;  // as Mutex::lock
  return wait_until(deadline);
}

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
  detail::note_wait(detail::WaitKind::wait_group, this);
  return settle(waiter.wait(deadline), guard_, waiters_, waiter, handoff);
}

std::int64_t WaitGroup::count() const noexcept {
  guard_.lock();
  const std::int64_t count = count_;
  guard_.unlock();
  return count;
}

}  // namespace aem
