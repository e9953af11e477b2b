// mutex.hpp — aem::Mutex: a mutual-exclusion lock that suspends capsules, never threads.
#pragma once

#include <aem/detail/waiter.hpp>
#include <aem/export.hpp>
#include <aem/result.hpp>
#include <aem/time.hpp>

namespace aem {

class Mutex;

namespace detail {
struct PriorityInheritance;
}  // namespace detail

// Mutex is a mutual-exclusion lock for capsules. A capsule that finds it held is suspended
// (its core runs other capsules meanwhile), never its thread. Capsules on different cores may
// share one Mutex.
//
// Fairness: waiters queue in FIFO order and unlock() hands ownership directly to the first of
// them; the lock is never free in between, so a capsule calling lock() cannot barge ahead of the
// queue and no waiter starves. If that waiter's deadline passes at the very moment it is handed
// the mutex, the hand-off wins: its lock() succeeds (never two owners, never an orphaned lock).
//
// Priority inheritance: while a capsule waits for the mutex, the capsule holding it runs at
// least at the waiter's priority (this_capsule::priority() shows it), and so, transitively, does
// the holder of a mutex that holder waits for; each drops back to its own priority
// (this_capsule::base_priority()) when it unlocks, keeping what waiters of other mutexes it
// still holds lend it. So a low-priority holder is not kept from unlocking by capsules of
// middling priority while a high-priority capsule waits. A waiter on another core lends too: the
// priority it had when it blocked reaches the holder's core through its mailbox (one message, a
// few microseconds at most), and a waiter that gives up (deadline) takes it back the same way.
//
// Mutex meets the Lockable requirements, so std::lock_guard, std::unique_lock and std::scoped_lock
// work with it (and aem::CondVar waits on a std::unique_lock<aem::Mutex>). It is not recursive.
// Destroying a Mutex that is held or waited on is undefined behaviour.
//
// Example:
//   aem::Mutex mutex;
//   std::map<int, std::string> table;
//   ...  // in any capsule, on any core:
//   {
//     std::lock_guard guard(mutex);
//     table[key] = value;
//   }
//   if (auto locked = mutex.lock(5ms); locked) { ...; mutex.unlock(); }
class Mutex {
 public:
  // Mutex() creates an unlocked mutex. Any thread.
  Mutex() noexcept = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  // lock() acquires the mutex, suspending the calling capsule until it is free. Waiters are
  // served in FIFO order.
  // Precondition: the calling capsule does not hold the mutex.
  // Call from a capsule. Throws std::system_error(errc::not_in_capsule) from a plain thread and
  // errc::inline_handler_blocked from an inline handler (Executor::inline_handler), also when
  // the mutex happens to be free. If the runtime shuts down while the capsule waits,
  // the capsule is unwound (see detail::throw_forced_unwind) without the mutex.
  AEM_EXPORT void lock();

  // lock() acquires the mutex, or gives up once `deadline` has passed and returns
  // errc::timed_out (then the mutex is not held). A free mutex is taken even if the deadline
  // has already passed, and so is one handed over as the deadline passes. From an inline
  // handler it returns errc::inline_handler_blocked (also when the mutex is free).
  // Precondition, call site and shutdown behaviour: as lock().
  AEM_EXPORT Result<void> lock(Deadline deadline);

  // try_lock() acquires the mutex if it is free and returns whether it did; it never
  // suspends. Call from any thread (a capsule on any core, or a plain thread).
  AEM_EXPORT bool try_lock() noexcept;

  // unlock() releases the mutex: if capsules wait, ownership passes directly to the first of
  // them, which is woken on its own core.
  // Precondition: the mutex is held, by the caller (a capsule, or a plain thread that got it
  // from try_lock()). Call from any thread.
  AEM_EXPORT void unlock() noexcept;

 private:
  friend struct detail::PriorityInheritance;
  Result<void> lock_until(Deadline deadline);

  detail::SpinLock guard_;  // guards everything below
  bool locked_ = false;
  // owner_ is the capsule holding the mutex (its runtime-internal control block), or nullptr
  // when it is free or held by a plain thread (try_lock). Kept for priority inheritance.
  void* owner_ = nullptr;
  detail::WaitList waiters_;
  // held_next_ links the mutexes the owning capsule holds; only the owner's core touches it.
  Mutex* held_next_ = nullptr;
};

}  // namespace aem
