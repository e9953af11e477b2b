// detail/waiter.hpp — the pieces every blocking primitive is built from: a spin lock for the
// primitive's few words of state, and Waiter, which settles who ends one suspension of a
// capsule — the notifier, the deadline or a shutdown — so that exactly one of them wakes it.
#pragma once

#include <aem/detail/cpu_relax.hpp>
#include <aem/export.hpp>
#include <aem/time.hpp>

#include <atomic>
#include <cstdint>
#include <thread>

namespace aem::detail {

// SpinLock guards a primitive's state for a few instructions; never held across a suspension
// or a system call. A holder preempted on an oversubscribed machine would make spinners burn
// their time slice, so after a short spin they yield the thread.
class SpinLock {
 public:
  void lock() noexcept {
    for (unsigned spins = 0; locked_.exchange(true, std::memory_order_acquire);) {
      while (locked_.load(std::memory_order_relaxed)) {
        if (++spins < 256) cpu_relax();
        else std::this_thread::yield();
      }
    }
  }
  bool try_lock() noexcept { return !locked_.exchange(true, std::memory_order_acquire); }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

// WakeReason says who ended a wait.
enum class WakeReason : std::uint8_t { pending, notified, timed_out, interrupted };

// Waiter lives on the stack of a capsule that is about to suspend; primitives queue it in a
// WaitList under their SpinLock.
//
// Protocol: the waiter queues itself and releases the lock, then calls wait(). A notifier takes
// the lock, removes the waiter from the list (which commits the resource to it), releases the
// lock and then calls notify() — notify() may make a system call. If notify() returns false
// the wait already ended by deadline or shutdown; the waiter finds itself unlinked and still
// takes the resource, after the notifier has let go of it: the notifier sets a `released` flag
// in a hand-off record on the waiter's stack once it is done with the Waiter, and the waiter
// does not return before it sees that flag (detail::await_handoff).
struct Waiter {
  Waiter* next = nullptr;
  Waiter* prev = nullptr;
  bool linked = false;
  bool interruptible = true;  // false while the capsule unwinds: a destructor may still wait
  std::atomic<WakeReason> reason{WakeReason::pending};
  void* capsule = nullptr;  // the waiting capsule (runtime-internal type)
  void* slot = nullptr;     // primitive-specific: e.g. where a Channel hands over a value
  // Mutex: the priority (aem::Priority) the waiter lends a holder on another core; written
  // before the waiter is queued, read under the mutex's lock.
  std::uint8_t lent = 0;

  // Waiter binds to the calling capsule. Throws std::system_error(errc::not_in_capsule) on a
  // plain thread.
  AEM_EXPORT Waiter();
  Waiter(const Waiter&) = delete;
  Waiter& operator=(const Waiter&) = delete;

  // notify wakes the waiter if nobody else has ended its wait; returns whether it did.
  // Call from any thread (a capsule on any core, or a plain thread).
  AEM_EXPORT bool notify() noexcept;

  // wait suspends the calling capsule until notify(), the deadline, or the runtime's shutdown.
  // Returns the reason. During shutdown it returns WakeReason::interrupted at once (unless the
  // capsule is already unwinding); the caller then unlinks itself and calls
  // throw_forced_unwind(). Call from the capsule that constructed the Waiter.
  AEM_EXPORT WakeReason wait(Deadline deadline);
};

// WaitList is an intrusive FIFO of Waiters; guard it with the owning primitive's SpinLock.
class WaitList {
 public:
  bool empty() const noexcept { return head_ == nullptr; }
  void push_back(Waiter* w) noexcept {
    w->next = nullptr;
    w->prev = tail_;
    if (tail_ != nullptr) tail_->next = w;
    else head_ = w;
    tail_ = w;
    w->linked = true;
  }
  Waiter* front() const noexcept { return head_; }
  Waiter* pop_front() noexcept {
    Waiter* w = head_;
    if (w != nullptr) remove(w);
    return w;
  }
  void remove(Waiter* w) noexcept {
    if (!w->linked) return;
    if (w->prev != nullptr) w->prev->next = w->next;
    else head_ = w->next;
    if (w->next != nullptr) w->next->prev = w->prev;
    else tail_ = w->prev;
    w->next = w->prev = nullptr;
    w->linked = false;
  }

 private:
  Waiter* head_ = nullptr;
  Waiter* tail_ = nullptr;
};

// throw_forced_unwind unwinds the calling capsule because the runtime is shutting down. The
// exception is not a std::exception; a `catch (...)` that swallows it delays the shutdown,
// so rethrow it. Destructors still run.
[[noreturn]] AEM_EXPORT void throw_forced_unwind();

// ForcedUnwind is what throw_forced_unwind throws.
struct ForcedUnwind {};

}  // namespace aem::detail
