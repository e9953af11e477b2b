// spawn.cpp — the non-template half of spawn, join, post/submit and this_capsule/this_core.
#include "runtime/events/runtime_events.hpp"
#include "runtime/sched/core.hpp"
#include "runtime/events/group_state.hpp"
#include "runtime/sched/runtime_impl.hpp"
#include "alloc/task_memory.hpp"

#include <aem/capsule.hpp>
#include <aem/cross_core.hpp>

#include <thread>

namespace aem {
namespace detail {
namespace {

CapsuleControl* running_capsule() noexcept {
  Core* core = Core::current_core();
  return core != nullptr ? core->current() : nullptr;
}

}  // namespace

namespace {

// spawn_elsewhere is spawn_task's general path: a task on another core, or in a heap block
// (too big for a capsule's frame), or one whose core must first grow its pool or refuse.
// Kept out of line so that the common path compiles to a short function of its own.
[[gnu::noinline]] Result<TaskState*> spawn_elsewhere(Core* core, const SpawnOptions& options, bool local, std::size_t size,
                                   std::size_t align, TaskBuilder build, void* fn, bool policed) {
  RuntimeImpl& runtime = core->runtime();
  if (!local && options.core >= runtime.core_count()) return make_error_code(errc::no_such_core);
  if (runtime.stopping()) return make_error_code(errc::shutting_down);

  // Policy: the task's group and what it holds against the limits, given back if it fails to
  // start here (once started, when it completes: Core::complete).
  struct Holds {
    RuntimeImpl& runtime;
    GroupState* group = nullptr;
    std::uint8_t holds = 0;
    ~Holds() {
      if (holds != 0) release_holds(runtime, group, holds);
    }
  } held{runtime};
  if (policed) {
    if (Result<void> admitted = admit_spawn(core, options.group, held.group, held.holds); !admitted) return admitted.error();
  }

  // A local spawn takes its capsule now, and keeps the task in the capsule's frame if it fits.
  CapsuleControl* capsule = nullptr;
  TaskHome home = TaskHome::heap;
  void* storage = nullptr;
  if (local) {
    auto acquired = core->acquire_capsule();
    if (!acquired) return acquired.error();
    capsule = *acquired;
    if (size <= kFrameBytes && align <= alignof(std::max_align_t)) {
      home = TaskHome::capsule_frame;
      storage = capsule->frame;
    }
  }
  if (home == TaskHome::heap) {
    try {
      storage = task_allocate(size, align);
    } catch (const std::bad_alloc&) {
      if (capsule != nullptr) core->recycle(capsule);
      return make_error_code(errc::out_of_memory);
    }
  }
  TaskState* task;
  try {
    task = build(storage, fn);
  } catch (...) {
    if (home == TaskHome::heap) task_free(storage);
    if (capsule != nullptr) core->recycle(capsule);
    throw;
  }
  task->home = home;
  task->priority = options.priority;
  task->own_fp_env = options.own_fp_env;
  task->group = held.group;
  task->policy_holds = std::exchange(held.holds, 0);
  if (local) {
    task->runner = core;
    core->count_task();
    core->launch(capsule, task, options.site.record());
    return task;
  }
  // Another core: its pool is its own, so the task travels there and takes a capsule there.
  // The spawning capsule is live, so the target cannot have left its loop.
  Core& target = runtime.core(options.core);
  task->runner = &target;
  // A task in a heap block carries its spawn site to the target core until it starts there
  // (Core::start_remote_task).
  task->site = options.site.record();
  target.count_incoming();
  task->mail.owner = task;
  task->mail.kind = kMailSpawn;
  target.post(&task->mail);
  return task;
}

}  // namespace

Result<TaskState*> spawn_task(const SpawnOptions& options, std::size_t size, std::size_t align, TaskBuilder build,
                              void* fn) {
  // An inline handler (on the dispatcher, no capsule) may start capsules too.
  Core* core = Core::api_caller();
  if (core == nullptr) return make_error_code(errc::not_in_capsule);
  if (!is_valid(options.priority)) return make_error_code(errc::invalid_argument);
  const bool local = options.core == kThisCore || options.core == core->index();
  const bool in_frame = size <= kFrameBytes && align <= alignof(std::max_align_t);
  // A capsule of an event group, a spawn into another group, or a runtime limit on capsules
  // takes the general path.
  const bool policed = options.group.mode() != SpawnGroup::Mode::inherit || current_group(core) != nullptr ||
                       runtime_limits(core->runtime()).policy.max_capsules != 0;
  if (!local || !in_frame || !core->has_pooled_capsule() || core->runtime().stopping() || policed) {
    return spawn_elsewhere(core, options, local, size, align, build, fn, policed);
  }
  // The common case: this core, a pooled capsule, the task in its frame.
  CapsuleControl* capsule = *core->acquire_capsule();
  TaskState* task;
  try {
    task = build(capsule->frame, fn);
  } catch (...) {
    core->recycle(capsule);
    throw;
  }
  task->home = TaskHome::capsule_frame;
  task->priority = options.priority;
  task->own_fp_env = options.own_fp_env;
  task->runner = core;
  core->count_task();
  core->launch(capsule, task, options.site.record());
  return task;
}

void task_join_wait(TaskState* task) {
  CapsuleControl* self = running_capsule();
  if (self == nullptr) throw std::system_error(Core::suspension_refused(), "Capsule::join");
  const std::uint32_t seen = task->flags.load(std::memory_order_acquire);
  if ((seen & TaskState::kFinished) != 0) return;
  task->joiner = self;
  if (task->runner == self->core) {
    // The task finishes on this very thread, so it cannot finish while we look.
    task->flags.store(seen | TaskState::kJoinWaiting, std::memory_order_relaxed);
  } else {
    const std::uint32_t prior = task->flags.fetch_or(TaskState::kJoinWaiting, std::memory_order_acq_rel);
    if ((prior & TaskState::kFinished) != 0) return;
  }
  self->wait_kind = WaitKind::join;  // for the diagnostics
  self->wait_object = task;
  self->wait_arg = static_cast<Core*>(task->runner)->index();
  const bool remote = task->runner != self->core;  // the core polls longer meanwhile
  if (remote) self->core->begin_remote_wait();
  self->core->suspend();  // Core::complete wakes us
  if (remote) self->core->end_remote_wait();
  self->wait_kind = WaitKind::none;
}

void task_release(TaskState* task) noexcept {
  Core* const here = Core::current_core();
  std::uint32_t prior;
  if (task->runner == here) {
    prior = task->flags.load(std::memory_order_relaxed);  // no concurrent finish: see task_join_wait
    task->flags.store(prior | TaskState::kReleased, std::memory_order_relaxed);
  } else {
    prior = task->flags.fetch_or(TaskState::kReleased, std::memory_order_acq_rel);
  }
  if ((prior & TaskState::kFinished) == 0) return;  // the capsule disposes of it when it ends
  if (task->home == TaskHome::heap) {
    task->dispose(task);
    task_free(task);
    return;
  }
  // In a capsule's frame: the capsule goes back to its own core's pool.
  auto* capsule = static_cast<CapsuleControl*>(task->capsule);
  Core* home = capsule->core;
  if (here == home) {
    task->dispose(task);
    home->recycle(capsule);
  } else {
    capsule->mail.owner = capsule;
    capsule->mail.kind = kMailRecycle;
    home->post(&capsule->mail);
  }
}

Result<void> submit_remote(unsigned core_index, TaskState* task) {
  CapsuleControl* self = running_capsule();
  if (self == nullptr) return Core::suspension_refused();
  if (!is_valid(task->priority)) return make_error_code(errc::invalid_argument);
  Core* core = self->core;
  RuntimeImpl& runtime = core->runtime();
  if (core_index >= runtime.core_count()) return make_error_code(errc::no_such_core);
  if (runtime.stopping()) return make_error_code(errc::shutting_down);
  Core& target = runtime.core(core_index);
  task->group = current_group(core);  // the caller's group; the caller, waiting, keeps it alive
  if (&target == core) {
    // Same core: run it in a fresh capsule so it may block like any capsule, and wait.
    auto capsule = core->acquire_capsule();
    if (!capsule) return capsule.error();
    task->runner = core;
    core->count_task();
    core->launch(*capsule, task);
  } else {
    task->runner = &target;
    target.count_incoming();
    task->mail.owner = task;
    task->mail.kind = kMailSpawn;
    target.post(&task->mail);
  }
  task_join_wait(task);
  return {};
}

void throw_forced_unwind() { throw ForcedUnwind{}; }

// ---- Waiter ------------------------------------------------------------------------------

Waiter::Waiter() {
  capsule = running_capsule();
  if (capsule == nullptr) throw std::system_error(Core::suspension_refused(), "aem: blocking call outside a capsule");
}

bool Waiter::notify() noexcept {
  WakeReason expected = WakeReason::pending;
  if (!reason.compare_exchange_strong(expected, WakeReason::notified, std::memory_order_acq_rel)) return false;
  Core::wake(static_cast<CapsuleControl*>(capsule));
  return true;
}

WakeReason Waiter::wait(Deadline deadline) {
  auto* self = static_cast<CapsuleControl*>(capsule);
  Core* core = self->core;
  interruptible = std::uncaught_exceptions() == 0;
  WakeReason expected = WakeReason::pending;
  // Give up at once when stopping or already past the deadline, unless a notifier got here
  // first: then its wake-up is on the way and we must take it.
  if (interruptible && core->runtime().stopping()) {
    if (reason.compare_exchange_strong(expected, WakeReason::interrupted, std::memory_order_acq_rel)) return WakeReason::interrupted;
  } else if (deadline.expired()) {
    if (reason.compare_exchange_strong(expected, WakeReason::timed_out, std::memory_order_acq_rel)) return WakeReason::timed_out;
  }
  self->waiter = this;
  const bool timed = !deadline.is_never();
  if (timed) core->wheel().arm(self->timer.node, deadline.time_point());
  core->suspend();
  self->waiter = nullptr;
  self->wait_kind = WaitKind::none;  // noted by the primitive before it waited (diagnostics)
  if (timed && self->timer.node.armed()) core->wheel().cancel(self->timer.node);
  return reason.load(std::memory_order_acquire);
}

}  // namespace detail

// ---- this_capsule / this_core ------------------------------------------------------------

namespace detail {

// yield_now is this_capsule::yield's body.
extern "C" [[gnu::visibility("hidden"), gnu::used]] void aem_yield_now() noexcept {
  Core* core = Core::current_core();
  if (core == nullptr || core->current() == nullptr) {
    // On a core's dispatcher (an inline handler) there is nothing to yield to: counted, and
    // it returns at once.
    if (core == nullptr || !core->events()->note_inline_block()) std::this_thread::yield();
    return;
  }
  core->yield();
}

}  // namespace detail

namespace this_capsule {

#if AEM_INLINE_SWITCH
// this_capsule::yield returns to its caller with an indirect jump rather than a `ret`. A `ret`
// is predicted from the return stack buffer, which holds what the capsule that switched to us
// pushed: when capsules yield to each other from different call sites, every return from yield
// would be mispredicted (several times the cost of the rest of the yield). An indirect jump is
// predicted from branch history, which tells the capsules apart. The caller's return address
// waits in rbx (callee-saved) across aem_yield_now.
asm(R"(
  .text
  .p2align 4
  .globl _ZN3aem12this_capsule5yieldEv
  .type _ZN3aem12this_capsule5yieldEv, @function
_ZN3aem12this_capsule5yieldEv:
  .cfi_startproc
)" AEM_ENDBR R"(
  pushq %rbx
  .cfi_adjust_cfa_offset 8
  .cfi_rel_offset %rbx, 0
  movq 8(%rsp), %rbx
  call aem_yield_now
  movq %rbx, %rcx
  popq %rbx
  .cfi_adjust_cfa_offset -8
  .cfi_restore %rbx
  addq $8, %rsp
  .cfi_adjust_cfa_offset -8
  .cfi_register %rip, %rcx
  jmp *%rcx
  .cfi_endproc
  .size _ZN3aem12this_capsule5yieldEv, .-_ZN3aem12this_capsule5yieldEv
)");
#else
void yield() { detail::aem_yield_now(); }
#endif

void sleep_until(TimePoint when) {
  detail::Core* core = detail::Core::current_core();
  if (core == nullptr || core->current() == nullptr) {
    // Sleeping on a core's dispatcher would stall the whole core.
    if (core != nullptr && core->events()->note_inline_block()) {
      throw std::system_error(make_error_code(errc::inline_handler_blocked), "this_capsule::sleep_until");
    }
    std::this_thread::sleep_until(when);
    return;
  }
  detail::Waiter waiter;
  detail::note_wait(detail::WaitKind::sleep, nullptr, when.time_since_epoch().count());
  if (waiter.wait(Deadline(when)) == detail::WakeReason::interrupted) detail::throw_forced_unwind();
}

Result<void> set_priority(Priority p) {
  detail::CapsuleControl* self = detail::running_capsule();
  if (self == nullptr) return make_error_code(errc::not_in_capsule);
  if (!is_valid(p)) return make_error_code(errc::invalid_argument);
  self->core->set_base_priority(*self, p);
  return {};
}

Priority priority() noexcept {
  detail::CapsuleControl* self = detail::running_capsule();
  return self != nullptr ? self->priority : Priority::normal;
}

Priority base_priority() noexcept {
  detail::CapsuleControl* self = detail::running_capsule();
  return self != nullptr ? self->base_priority : Priority::normal;
}

CapsuleId id() noexcept {
  detail::CapsuleControl* self = detail::running_capsule();
  return self != nullptr ? self->guard.capsule_id : 0;
}

bool inside() noexcept { return detail::running_capsule() != nullptr; }

}  // namespace this_capsule

namespace this_core {

unsigned id() noexcept {
  detail::Core* core = detail::Core::current_core();
  return core != nullptr ? core->index() : kNone;
}

unsigned count() noexcept {
  detail::Core* core = detail::Core::current_core();
  return core != nullptr ? core->runtime().core_count() : 0;
}

}  // namespace this_core
}  // namespace aem
