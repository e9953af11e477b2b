// detail/task.hpp — the type-erased state of one spawned function: its callable, its result
// and the handshake between the capsule that runs it and the handle that joins it.
#pragma once

#include <aem/detail/mail_node.hpp>
#include <aem/error.hpp>
#include <aem/priority.hpp>
#include <aem/spawn_site.hpp>

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <new>
#include <system_error>
#include <type_traits>
#include <utility>

namespace aem::detail {

// TaskHome says who owns a TaskState's memory, and so who disposes of it.
enum class TaskHome : std::uint8_t {
  capsule_frame,  // in the frame area of the capsule that runs it: recycled with the capsule
  heap,           // from the general allocator: freed by the last of finish and release
  caller,         // on the stack of a capsule that waits for it (submit): never freed here
};

// TaskState is what the runtime sees of a task. `flags` settles the race between the running
// capsule finishing and the handle being joined or dropped, across cores.
struct TaskState {
  static constexpr std::uint32_t kFinished = 1;
  static constexpr std::uint32_t kReleased = 2;
  static constexpr std::uint32_t kJoinWaiting = 4;

  MailNode mail;  // carries a cross-core spawn to its core
  std::atomic<std::uint32_t> flags{0};
  TaskHome home = TaskHome::heap;
  Priority priority = Priority::normal;
  bool own_fp_env = false;  // SpawnOptions::own_fp_env
  // policy_holds: what the task holds against its group and the runtime's Policy, given back
  // when it completes; 0 for the default group and no limit.
  std::uint8_t policy_holds = 0;
  void* group = nullptr;  // its event group (detail::GroupState), nullptr: the default group
  void* joiner = nullptr;   // the capsule suspended in join(), valid while kJoinWaiting
  // By home (one pointer serves both: the struct stays as it is):
  union {
    void* capsule = nullptr;  // TaskHome::capsule_frame: the capsule whose frame holds this
    const SiteRecord* site;   // TaskHome::heap: its spawn site, carried to the core that runs it
  };
  void* runner = nullptr;   // the core that runs it: handle operations there need no atomic RMW
  // run invokes the callable and stores its outcome; when launch_error is set (the task could
  // not be given a capsule) it only reports that error to whoever waits for the outcome.
  void (*run)(TaskState*) noexcept = nullptr;
  // dispose destroys the object (and, for TaskHome::heap, frees its memory).
  void (*dispose)(TaskState*) noexcept = nullptr;
  std::exception_ptr exception;
  StoredError launch_error;

  TaskState() = default;
  TaskState(const TaskState&) = delete;
  TaskState& operator=(const TaskState&) = delete;
  ~TaskState() = default;
};

struct Unit {};
template <typename R>
using Stored = std::conditional_t<std::is_void_v<R>, Unit, R>;

// TaskResult<R> adds the storage for a result of type R.
template <typename R>
struct TaskResult : TaskState {
  static_assert(!std::is_reference_v<R>, "a capsule's function must return a value, not a reference");
  alignas(Stored<R>) unsigned char result_storage[sizeof(Stored<R>)];
  bool has_result = false;

  Stored<R>& result() noexcept { return *std::launder(reinterpret_cast<Stored<R>*>(result_storage)); }
  ~TaskResult() {
    if (has_result) result().~Stored<R>();
  }
};

// Task<F, R> owns the callable F until it has run.
template <typename F, typename R>
struct Task final : TaskResult<R> {
  alignas(F) unsigned char fn_storage[sizeof(F)];
  bool has_fn = false;

  template <typename G>
  explicit Task(G&& g) {
    new (fn_storage) F(std::forward<G>(g));
    has_fn = true;
    this->run = &run_impl;
    this->dispose = &dispose_in_place;
  }
  ~Task() { destroy_fn(); }

  F& fn() noexcept { return *std::launder(reinterpret_cast<F*>(fn_storage)); }
  void destroy_fn() noexcept {
    if (has_fn) {
      fn().~F();
      has_fn = false;
    }
  }

  static void run_impl(TaskState* state) noexcept {
    auto* self = static_cast<Task*>(state);
    if (!self->launch_error) {
      try {
        if constexpr (std::is_void_v<R>) {
          std::invoke(std::move(self->fn()));
          new (self->result_storage) Unit{};
        } else {
          new (self->result_storage) R(std::invoke(std::move(self->fn())));
        }
        self->has_result = true;
      } catch (...) {
        self->exception = std::current_exception();
      }
    }
    self->destroy_fn();  // captures die on the capsule that ran them, like std::thread
  }
  static void dispose_in_place(TaskState* state) noexcept { static_cast<Task*>(state)->~Task(); }
};

// take_outcome returns the result of a finished task, or throws what it ended with.
template <typename R>
R take_outcome(TaskResult<R>& task) {
  if (task.launch_error) throw std::system_error(task.launch_error.get(), "aem: the task could not be started");
  if (task.exception) std::rethrow_exception(task.exception);
  if constexpr (!std::is_void_v<R>) return std::move(task.result());
}

}  // namespace aem::detail
