// capsule.hpp — spawning capsules (pooled fibers), joining them, and what a running capsule
// may ask about itself and its core.
#pragma once

#include <aem/detail/task.hpp>
#include <aem/error.hpp>
#include <aem/export.hpp>
#include <aem/group.hpp>
#include <aem/priority.hpp>
#include <aem/result.hpp>
#include <aem/spawn_site.hpp>
#include <aem/time.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <utility>

namespace aem {

// CapsuleId names one spawn: the core in the top 8 bits, a per-core sequence number below.
using CapsuleId = std::uint64_t;

// kThisCore in SpawnOptions::core means "the core of the calling capsule".
inline constexpr unsigned kThisCore = ~0u;

// SpawnOptions says where and how urgently a capsule runs.
struct SpawnOptions {
  Priority priority = Priority::normal;
  unsigned core = kThisCore;
  // own_fp_env gives the capsule a floating-point control state (rounding mode, flush-to-zero,
  // exception masks: fesetround, _MM_SET_FLUSH_ZERO_MODE) of its own. By default a capsule
  // shares its core thread's, as goroutines and Seastar threads do, because saving it costs
  // more than the rest of a switch: a capsule that changes it without this option changes it
  // for its core's other capsules too, until it sets it back. With it, the capsule starts from
  // the state its core's capsules share and its changes stay its own; each switch into or out
  // of it costs about 6 ns more (BM_YieldOwnFpEnv against BM_Yield in aem_bench).
  bool own_fp_env = false;
  // group is the event group the capsule joins: its parent's by default, a fresh one, or a given
  // one (group.hpp). A spawn into a cancelled group fails with errc::cancelled; beyond the
  // group's (or the runtime's) Policy::max_capsules with errc::policy_limit.
  SpawnGroup group{};
  // site is where the capsule was spawned, named by the stall report, Runtime::dump and the
  // gdb commands. Leave it: the default captures the line that makes the options (the spawn
  // call itself when they are written there).
  SpawnSite site = SpawnSite::here();
};

namespace detail {

// TaskBuilder constructs a task in `storage` from the callable at `fn` and returns it.
using TaskBuilder = TaskState* (*)(void* storage, void* fn);

// spawn_task is the whole non-template half of spawn, in one call: it picks the storage (the
// frame of the capsule that will run the task when it fits, else the heap), has `build`
// construct the task there, and starts it. What `build` throws is rethrown, with the storage
// and capsule given back.
AEM_EXPORT Result<TaskState*> spawn_task(const SpawnOptions& options, std::size_t size, std::size_t align,
                                         TaskBuilder build, void* fn);
AEM_EXPORT void task_join_wait(TaskState* task);
AEM_EXPORT void task_release(TaskState* task) noexcept;

template <typename F>
using SpawnResult = std::invoke_result_t<std::decay_t<F>&&>;

// build_task is spawn's TaskBuilder for a Task type T made from an F&&.
template <typename T, typename F>
TaskState* build_task(void* storage, void* fn) {
  return new (storage) T(std::forward<F>(*static_cast<std::remove_reference_t<F>*>(fn)));
}

}  // namespace detail

// Capsule<T> is the handle of a spawned capsule whose function returns T. Dropping the handle
// detaches the capsule: it runs to completion and its result is discarded.
//
// Example:
//   auto c = aem::spawn([] { return fib(30); }, {.priority = aem::Priority::high});
//   if (c) std::cout << c->join() << '\n';
template <typename T>
class Capsule {
 public:
  Capsule() noexcept = default;
  explicit Capsule(detail::TaskResult<T>* task) noexcept : task_(task) {}
  Capsule(Capsule&& other) noexcept : task_(std::exchange(other.task_, nullptr)) {}
  Capsule& operator=(Capsule&& other) noexcept {
    if (this != &other) {
      detach();
      task_ = std::exchange(other.task_, nullptr);
    }
    return *this;
  }
  Capsule(const Capsule&) = delete;
  Capsule& operator=(const Capsule&) = delete;
  ~Capsule() { detach(); }

  // join suspends the calling capsule until this capsule ends, then returns its value or
  // rethrows the exception it ended with. Call from a capsule (on any core), once.
  // Throws std::system_error: errc::invalid_argument if not joinable, errc::not_in_capsule
  // from a plain thread, or the launch error (errc::resource_limit, errc::shutting_down) of
  // a capsule spawned on another core that could not be started.
  T join() {
    if (task_ == nullptr) throw std::system_error(make_error_code(errc::invalid_argument), "Capsule::join: not joinable");
    detail::task_join_wait(task_);
    detail::TaskResult<T>* task = std::exchange(task_, nullptr);
    struct Release {
      detail::TaskState* task;
      ~Release() { detail::task_release(task); }
    } release{task};
    return detail::take_outcome<T>(*task);
  }

  // detach lets the capsule run on without a handle. Call from any thread.
  void detach() noexcept {
    if (task_ != nullptr) detail::task_release(std::exchange(task_, nullptr));
  }

  // done reports whether the capsule's function has returned (a join would not suspend).
  bool done() const noexcept {
    return task_ != nullptr && (task_->flags.load(std::memory_order_acquire) & detail::TaskState::kFinished) != 0;
  }
  bool joinable() const noexcept { return task_ != nullptr; }

 private:
  detail::TaskResult<T>* task_ = nullptr;
};

// spawn starts `fn` in a capsule from the pool of `options.core` (default: the calling
// capsule's core) at `options.priority`, and returns its handle. Call from a capsule.
// Errors: errc::not_in_capsule (plain thread), errc::no_such_core, errc::invalid_argument
// (priority out of range), errc::resource_limit (the core's pool is at Config::max_capsules),
// errc::map_count_limit (vm.max_map_count reached), errc::shutting_down.
// A spawn on another core only fails up front for bad arguments; if that core cannot start it,
// join() reports the error.
template <typename F>
Result<Capsule<detail::SpawnResult<F>>> spawn(F&& fn, SpawnOptions options = {}) {
  using R = detail::SpawnResult<F>;
  using T = detail::Task<std::decay_t<F>, R>;
  Result<detail::TaskState*> task = detail::spawn_task(options, sizeof(T), alignof(T), &detail::build_task<T, F>,
                                                       const_cast<void*>(static_cast<const volatile void*>(std::addressof(fn))));
  if (!task) return task.error();
  return Capsule<R>(static_cast<T*>(*task));
}

namespace this_capsule {

// yield lets every other ready capsule of equal or higher priority run first. From a plain
// thread it yields the thread.
AEM_EXPORT void yield();

// sleep_until suspends the calling capsule until `when` (at most one Config::timer_tick late).
// From a plain thread it sleeps the thread.
AEM_EXPORT void sleep_until(TimePoint when);

// sleep_for suspends the calling capsule for at least `d`.
template <typename Rep, typename Period>
void sleep_for(std::chrono::duration<Rep, Period> d) {
  sleep_until(Deadline(d).time_point());
}

// set_priority changes the calling capsule's own priority from its next suspension on; while
// it holds an aem::Mutex that a capsule of higher priority waits for, it runs at least at that
// priority all the same (see Mutex). Errors: errc::invalid_argument, errc::not_in_capsule.
AEM_EXPORT Result<void> set_priority(Priority p);

// priority returns the priority the calling capsule is scheduled at: its own, or higher while
// it inherits one through a Mutex it holds (Priority::normal on a plain thread).
AEM_EXPORT Priority priority() noexcept;

// base_priority returns the calling capsule's own priority, the one spawn or set_priority gave
// it, whatever it inherits (Priority::normal on a plain thread).
AEM_EXPORT Priority base_priority() noexcept;

// id returns the calling capsule's id, or 0 on a plain thread.
AEM_EXPORT CapsuleId id() noexcept;

// inside reports whether the caller runs in a capsule.
AEM_EXPORT bool inside() noexcept;

}  // namespace this_capsule

namespace this_core {

// kNone is what id() returns on a thread that is not one of a runtime's cores.
inline constexpr unsigned kNone = ~0u;

// id returns the index of the core the caller runs on (0..count()-1), or kNone.
AEM_EXPORT unsigned id() noexcept;

// count returns the number of cores of the caller's runtime (0 on a plain thread).
AEM_EXPORT unsigned count() noexcept;

}  // namespace this_core
}  // namespace aem
