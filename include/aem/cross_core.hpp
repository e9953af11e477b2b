// cross_core.hpp — handing work to another core: post (fire and forget) and submit (wait for
// the result, suspending only the calling capsule).
#pragma once

#include <aem/capsule.hpp>
#include <aem/detail/task.hpp>
#include <aem/export.hpp>
#include <aem/result.hpp>

#include <type_traits>
#include <utility>

namespace aem {

namespace detail {
AEM_EXPORT Result<void> submit_remote(unsigned core, TaskState* task);
}  // namespace detail

// post runs `fn` in a fresh capsule on `core` and returns at once. Call from a capsule.
// Errors: as spawn.
template <typename F>
Result<void> post(unsigned core, F&& fn, Priority priority = Priority::normal) {
  auto capsule = spawn(std::forward<F>(fn), {.priority = priority, .core = core});
  if (!capsule) return capsule.error();
  capsule->detach();
  return {};
}

// submit runs `fn` in a capsule on `core` and suspends the calling capsule (never its thread)
// until the result is back; an exception thrown by `fn` is rethrown here. The state of the
// call lives on the caller's stack: nothing is allocated. Call from a capsule.
// Errors: errc::not_in_capsule, errc::no_such_core, errc::shutting_down,
// errc::resource_limit (the target core's pool is full).
//
// Example:
//   aem::Result<int> r = aem::submit(1, [] { return shard_lookup(key); });
template <typename F, typename R = detail::SpawnResult<F>>
Result<R> submit(unsigned core, F&& fn, Priority priority = Priority::normal) {
  detail::Task<std::decay_t<F>, R> task(std::forward<F>(fn));
  task.home = detail::TaskHome::caller;
  task.priority = priority;
  if (Result<void> sent = detail::submit_remote(core, &task); !sent) return sent.error();
  if (task.launch_error) return task.launch_error.get();
  if constexpr (std::is_void_v<R>) {
    detail::take_outcome<R>(task);
    return {};
  } else {
    return detail::take_outcome<R>(task);
  }
}

}  // namespace aem
