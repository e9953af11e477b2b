// condvar.hpp — aem::CondVar: a condition variable for capsules, used with aem::Mutex.
#pragma once

#include <aem/detail/waiter.hpp>
#include <aem/export.hpp>
#include <aem/mutex.hpp>
#include <aem/result.hpp>
#include <aem/time.hpp>

#include <concepts>
#include <mutex>
#include <system_error>

namespace aem {

// CondVar lets capsules wait until a condition guarded by an aem::Mutex holds. Waiting
// suspends the capsule (never its thread); notify_one() and notify_all() may be called from
// any thread, including plain threads that aem does not know, with or without the mutex held.
//
// A waiter is queued before the mutex is released, so a notify that comes after that point is
// never lost, even if it arrives before the waiter has suspended. Waiters are woken in FIFO
// order. There are no spurious wake-ups, but a woken capsule re-acquires the mutex after others
// may have run, so check the condition in a loop, or use the predicate overloads.
// Destroying a CondVar that capsules wait on is undefined behaviour.
//
// Example:
//   aem::Mutex mutex;
//   aem::CondVar ready_cv;
//   std::deque<Job> jobs;
//   // consumer capsule:
//   std::unique_lock lock(mutex);
//   if (!ready_cv.wait(lock, 100ms, [&] { return !jobs.empty(); })) return;  // timed out
//   Job job = std::move(jobs.front());
//   jobs.pop_front();
//   // producer (capsule or plain thread):
//   { std::lock_guard guard(mutex); jobs.push_back(job); }
//   ready_cv.notify_one();
class CondVar {
 public:
  // CondVar() creates a condition variable nobody waits on. Any thread.
  CondVar() noexcept = default;
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;

  // wait() atomically releases `lock` and suspends the calling capsule until notify_one() or
  // notify_all() wakes it, then re-acquires `lock` before returning.
  // Precondition: `lock` owns its mutex.
  // Call from a capsule. Throws std::system_error(errc::not_in_capsule) from a plain thread and
  // std::system_error(std::errc::operation_not_permitted) if `lock` does not own its mutex
  // (in both cases before touching `lock`), and errc::inline_handler_blocked from an inline
  // handler (Executor::inline_handler). If the runtime shuts down while the capsule waits,
  // the capsule is unwound (see detail::throw_forced_unwind) and `lock` no longer owns the
  // mutex (lock.owns_lock() is false, so the unique_lock will not unlock it again).
  AEM_EXPORT void wait(std::unique_lock<Mutex>& lock);

  // wait() is wait(lock) that gives up once `deadline` has passed: it then re-acquires
  // `lock` (without a deadline, like std::condition_variable) and returns errc::timed_out.
  // Returns success when woken by a notify (also one that came as the deadline passed).
  // From an inline handler it returns errc::inline_handler_blocked (without touching `lock`).
  // Precondition, call site and shutdown behaviour: as wait(lock).
  AEM_EXPORT Result<void> wait(std::unique_lock<Mutex>& lock, Deadline deadline);

  // wait() waits until `pred()` is true: `while (!pred()) wait(lock);`. `pred` is called with
  // the mutex held.
  // Precondition, call site and shutdown behaviour: as wait(lock).
  template <std::predicate Pred>
  void wait(std::unique_lock<Mutex>& lock, Pred pred) {
    while (!pred()) wait(lock);
  }

  // wait() waits until `pred()` is true or `deadline` has passed, and returns the final value
  // of `pred()` (so false means it timed out with the condition still false). `pred` is called
  // with the mutex held. From an inline handler, while `pred()` is false, it throws
  // std::system_error(errc::inline_handler_blocked).
  // Precondition, call site and shutdown behaviour: as wait(lock).
  template <std::predicate Pred>
  bool wait(std::unique_lock<Mutex>& lock, Deadline deadline, Pred pred) {
    while (!pred()) {
      Result<void> waited = wait(lock, deadline);
      if (waited) continue;
      // Only a bool to return: an inline handler's refusal is thrown (like wait(lock, pred)),
      // not mistaken for a timeout.
      if (waited.error() == errc::inline_handler_blocked) throw std::system_error(waited.error(), "aem::CondVar::wait");
      return pred();
    }
    return true;
  }

  // notify_one() wakes the first capsule waiting on this CondVar, if any. If that waiter's
  // deadline passes at the very same moment, the notification still goes to it (its wait
  // reports success), so a notify_one() is never lost while a capsule waits.
  // Call from any thread (a capsule on any core, or a plain thread).
  AEM_EXPORT void notify_one() noexcept;

  // notify_all() wakes every capsule waiting on this CondVar.
  // Call from any thread (a capsule on any core, or a plain thread).
  AEM_EXPORT void notify_all() noexcept;

 private:
  Result<void> wait_until(std::unique_lock<Mutex>& lock, Deadline deadline);

  detail::SpinLock guard_;  // guards waiters_
  detail::WaitList waiters_;
};

}  // namespace aem
