// priority_inheritance.cpp — a capsule's effective priority: its own, raised by waiters of the
// mutexes it holds; and the Core calls that reschedule a capsule at a new priority.
#include "runtime/sched/priority_inheritance.hpp"

#include "runtime/sched/core.hpp"

#include <algorithm>
#include <new>

namespace aem::detail {
namespace {

// LendNote carries a lend, or its taking back, to the core of a holder on another core. The
// holder's control block outlives the runtime's cores, so the pointer stays valid; `via` is only
// compared with the mutexes the holder holds, never followed unless it is one of them. The
// waiter may finish before the note is read; the holder's core still reads it before it leaves
// its loop (can_exit looks at the mailbox after it has seen every task finished).
struct LendNote {
  MailNode mail;
  CapsuleControl* holder = nullptr;
  Mutex* via = nullptr;
  Priority lent = Priority::idle;
  unsigned depth = 0;
};

}  // namespace

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
    const Priority p = capsule->core == core ? capsule->priority : static_cast<Priority>(waiter->lent);
    top = std::max(top, p);
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
  lend(*self.core, static_cast<CapsuleControl*>(holder), &mutex, self.priority, 0);
}

void PriorityInheritance::lend(Core& core, CapsuleControl* next, Mutex* via, Priority lent, unsigned depth) noexcept {
  for (; next != nullptr && depth < kMaxChain; ++depth) {
    if (next->core != &core) return post(kMailLend, next, via, lent, depth);
    // Frozen while we run (same core): it still holds the mutex we read it from.
    if (next->priority < lent) core.reprioritize(next, lent);
    Mutex* waited = next->blocked_on;
    if (waited == nullptr) return;
    waited->guard_.lock();
    auto* after = static_cast<CapsuleControl*>(waited->owner_);
    waited->guard_.unlock();
    if (after == next) return;  // handed the mutex, not yet running: the chain ends there
    next = after;
    via = waited;
  }
}

void PriorityInheritance::post(MailKind kind, CapsuleControl* holder, Mutex* via, Priority lent, unsigned depth) noexcept {
  auto* note = new (std::nothrow) LendNote;
  if (note == nullptr) return;
  note->mail.kind = kind;
  note->mail.owner = note;
  note->holder = holder;
  note->via = via;
  note->lent = lent;
  note->depth = depth;
  holder->core->post(&note->mail);
}

void PriorityInheritance::arrived(Core& core, MailNode* node) noexcept {
  auto* note = static_cast<LendNote*>(node->owner);
  CapsuleControl* holder = note->holder;
  if (node->kind == kMailTakeBack) {
    if (holder->priority != holder->base_priority) core.restore_priority(*holder);
  } else if (held_by(*holder, note->via)) {
    // Still the holder (or, at worst, of another mutex at the same address: then the next
    // unlock's restore takes the loan back).
    lend(core, holder, note->via, note->lent, note->depth);
  }
  delete note;
}

bool PriorityInheritance::held_by(const CapsuleControl& capsule, const Mutex* mutex) noexcept {
  for (const Mutex* held = capsule.held_mutexes; held != nullptr; held = held->held_next_) {
    if (held == mutex) return true;
  }
  return false;
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
  if (holder == nullptr) return;
  if (holder->core != self.core) return post(kMailTakeBack, holder, &mutex, self.priority, 0);
  if (holder->priority != holder->base_priority) self.core->restore_priority(*holder);
}

}  // namespace aem::detail
