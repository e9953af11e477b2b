// semaphore.hpp — aem::Semaphore: a counting semaphore that suspends capsules, never threads.
#pragma once

#include <aem/detail/waiter.hpp>
#include <aem/export.hpp>
#include <aem/result.hpp>
#include <aem/time.hpp>

#include <cstddef>

namespace aem {

// Semaphore holds a count of permits. acquire() takes one, suspending the calling capsule while
// there are none; release() returns permits from any thread. Capsules on different cores may
// share one Semaphore.
//
// Fairness: waiters queue in FIFO order and release() hands each permit directly to the first
// waiter in the queue, so a capsule arriving later cannot take a permit ahead of the queue.
// A permit is never lost or counted twice: if a waiter's deadline passes at the very moment a
// permit is handed to it, the hand-off wins and its acquire() succeeds.
// Destroying a Semaphore that capsules wait on is undefined behaviour.
//
// Example:
//   aem::Semaphore slots(8);  // at most 8 requests in flight
//   ...  // in each request capsule:
//   if (!slots.acquire(50ms)) return reply_busy();
//   serve();
//   slots.release();
class Semaphore {
 public:
  // Semaphore() creates a semaphore holding `initial` permits.
  explicit Semaphore(std::size_t initial = 0) noexcept : count_(initial) {}
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;

  // acquire() takes one permit, suspending the calling capsule until one is available.
  // Call from a capsule. Throws std::system_error(errc::not_in_capsule) from a plain thread and
  // errc::inline_handler_blocked from an inline handler (Executor::inline_handler), even when a
  // permit is available. If the runtime shuts down while the capsule waits, the
  // capsule is unwound (see detail::throw_forced_unwind) without a permit.
  AEM_EXPORT void acquire();

  // acquire() takes one permit, or gives up once `deadline` has passed and returns
  // errc::timed_out (no permit taken). An available permit is taken even if the deadline has
  // already passed, and so is one handed over as the deadline passes. From an inline handler
  // it returns errc::inline_handler_blocked (even when a permit is available).
  // Call site and shutdown behaviour: as acquire().
  AEM_EXPORT Result<void> acquire(Deadline deadline);

  // try_acquire() takes one permit if one is available and returns whether it did; it never
  // suspends. Call from any thread (a capsule on any core, or a plain thread).
  AEM_EXPORT bool try_acquire() noexcept;

  // release() adds `n` permits: each goes to the first waiting capsule, if any, else to the
  // count. Call from any thread (a capsule on any core, or a plain thread).
  AEM_EXPORT void release(std::size_t n = 1) noexcept;

  // count() returns the number of available permits (a snapshot). Call from any thread.
  AEM_EXPORT std::size_t count() const noexcept;

 private:
  Result<void> acquire_until(Deadline deadline);

  mutable detail::SpinLock guard_;  // guards everything below
  std::size_t count_;               // nonzero only while no capsule waits
  detail::WaitList waiters_;
};

}  // namespace aem
