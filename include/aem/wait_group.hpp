// wait_group.hpp — aem::WaitGroup: wait for a set of tasks to finish, like Go's sync.WaitGroup.
#pragma once

#include <aem/detail/waiter.hpp>
#include <aem/export.hpp>
#include <aem/result.hpp>
#include <aem/time.hpp>

#include <cstdint>

namespace aem {

// WaitGroup counts outstanding tasks: add() raises the count, done() lowers it, and wait()
// suspends the calling capsule until it reaches zero. Any thread may call add() and done();
// capsules on any core may wait. A WaitGroup may be reused once its count is back to zero.
// Destroying a WaitGroup that capsules wait on is undefined behaviour.
//
// Example:
//   aem::WaitGroup wg;
//   for (unsigned core = 0; core < aem::this_core::count(); ++core) {
//     wg.add();
//     (void)aem::post(core, [&wg] { work(); wg.done(); });
//   }
//   wg.wait();  // every work() has returned
class WaitGroup {
 public:
  // WaitGroup() creates a group with a count of `initial`. Precondition: initial >= 0.
  explicit WaitGroup(std::int64_t initial = 0) noexcept : count_(initial) {}
  WaitGroup(const WaitGroup&) = delete;
  WaitGroup& operator=(const WaitGroup&) = delete;

  // add() adds `delta` (which may be negative) to the count; when the count reaches zero every
  // waiting capsule is woken.
  // Precondition: the count does not become negative; if it would, add() changes nothing and
  // throws std::logic_error (Go panics).
  // Call from any thread (a capsule on any core, or a plain thread).
  AEM_EXPORT void add(std::int64_t delta = 1);

  // done() lowers the count by one: add(-1).
  // Precondition: the count is positive (else std::logic_error, as add()).
  // Call from any thread (a capsule on any core, or a plain thread).
  void done() { add(-1); }

  // wait() suspends the calling capsule until the count is zero (returns at once if it is).
  // Call from a capsule. Throws std::system_error(errc::not_in_capsule) from a plain thread and
  // errc::inline_handler_blocked from an inline handler (Executor::inline_handler), even when
  // the count is zero. If the runtime shuts down while the capsule waits, the
  // capsule is unwound (see detail::throw_forced_unwind).
  AEM_EXPORT void wait();

  // wait() waits until the count is zero, or gives up once `deadline` has passed and returns
  // errc::timed_out. From an inline handler it returns errc::inline_handler_blocked (even
  // when the count is zero).
  // Call site and shutdown behaviour: as wait().
  AEM_EXPORT Result<void> wait(Deadline deadline);

  // count() returns the current count (a snapshot). Call from any thread.
  AEM_EXPORT std::int64_t count() const noexcept;

 private:
  Result<void> wait_until(Deadline deadline);

  mutable detail::SpinLock guard_;  // guards everything below
  std::int64_t count_;
  detail::WaitList waiters_;
};

}  // namespace aem
