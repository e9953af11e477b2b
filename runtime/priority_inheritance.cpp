// priority_inheritance.cpp — a capsule's effective priority: its own, raised by waiters of the
// mutexes it holds; and the Core calls that reschedule a capsule at a new priority.
#include "runtime/priority_inheritance.hpp"

#include "runtime/core.hpp"

#include <algorithm>

namespace aem::detail {

// ---- Core --------------------------------------------------------------------------------

void Core::set_base_priority(CapsuleControl& capsule, Priority p) noexcept {
  capsule.base_priority = p;
  restore_priority(capsule);
}

void Core::restore_priority(CapsuleControl& capsule) noexcept {
  Priority p = std::max(capsule.base_priority, capsule.owed);
  if (capsule.held_mutexes != nullptr) p = std::max(p, PriorityInheritance::inherited(capsule));
  reprioritize(&capsule, p);
}

// ---- PriorityInheritance -----------------------------------------------------------------

Priority PriorityInheritance::top_waiter(Mutex& mutex, const Core* core) noexcept {
  Priority top = Priority::idle;
  mutex.guard_.lock();
  for (Waiter* waiter = mutex.waiters_.front(); waiter != nullptr; waiter = waiter->next) {
    const auto* capsule = static_cast<const CapsuleControl*>(waiter->capsule);
    // capsule->core never changes; priority is only read for capsules of our core.
    if (capsule->core == core) top = std::max(top, capsule->priority);
  }
  mutex.guard_.unlock();
  return top;
}

Priority PriorityInheritance::inherited(const CapsuleControl& capsule) noexcept {
  Priority top = Priority::idle;
  for (Mutex* mutex = capsule.held_mutexes; mutex != nullptr; mutex = mutex->held_next_) {
    top = std::max(top, top_waiter(*mutex, capsule.core));
  }
  return top;
}

void PriorityInheritance::held(CapsuleControl& self, Mutex& mutex) noexcept {
  mutex.held_next_ = self.held_mutexes;
  self.held_mutexes = &mutex;
}

void PriorityInheritance::released(CapsuleControl& self, Mutex& mutex) noexcept {
  // Usually the head: mutexes are mostly released in the reverse order of locking.
  for (Mutex** link = &self.held_mutexes; *link != nullptr; link = &(*link)->held_next_) {
    if (*link == &mutex) {
      *link = mutex.held_next_;
      return;
    }
  }
}

void PriorityInheritance::blocked(CapsuleControl& self, Mutex& mutex, void* holder) noexcept {
  self.blocked_on = &mutex;
  Core& core = *self.core;
  const Priority lent = self.priority;
  auto* next = static_cast<CapsuleControl*>(holder);
  for (unsigned depth = 0; next != nullptr && next->core == &core && depth < kMaxChain; ++depth) {
    // Frozen while we run (same core): it still holds the mutex we read it from.
    if (next->priority < lent) core.reprioritize(next, lent);
    Mutex* waited = next->blocked_on;
    if (waited == nullptr) break;
    waited->guard_.lock();
    auto* after = static_cast<CapsuleControl*>(waited->owner_);
    waited->guard_.unlock();
    if (after == next) break;  // handed the mutex, not yet running: the chain ends there
    next = after;
  }
}

void PriorityInheritance::unblocked(CapsuleControl& self, Mutex& mutex, bool owned) noexcept {
  self.blocked_on = nullptr;
  if (owned) {
    held(self, mutex);
    const Priority behind = top_waiter(mutex, self.core);
    if (behind > self.priority) self.core->reprioritize(&self, behind);
    return;
  }
  mutex.guard_.lock();
  auto* holder = static_cast<CapsuleControl*>(mutex.owner_);
  mutex.guard_.unlock();
  // What `self` lent the holders further down a chain stays until they unlock.
  if (holder != nullptr && holder->core == self.core && holder->priority != holder->base_priority) {
    self.core->restore_priority(*holder);
  }
}

}  // namespace aem::detail
