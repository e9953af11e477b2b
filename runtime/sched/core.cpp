#include "runtime/sched/core.hpp"

#include "io/backend_factory.hpp"
#include "runtime/sched/priority_inheritance.hpp"
#include "runtime/sched/runtime_impl.hpp"
#include "alloc/task_memory.hpp"

#include <aem/detail/cpu_relax.hpp>

#include <algorithm>
#include <new>
#include <stdexcept>
#include <system_error>
#include <unistd.h>

namespace aem::detail {
Core::Core(RuntimeImpl& runtime, unsigned index) noexcept
    : runtime_(runtime), index_(index), config_(runtime.config()), ready_(runtime.config().starvation_budget),
      spin_(std::chrono::duration_cast<Duration>(runtime.config().idle_spin)) {}

Core::~Core() { teardown(); }

void Core::note_cq_overflow(void* core, std::uint64_t total) noexcept {
  static_cast<Core*>(core)->events_->raise_error(Subsystem::completion_queue, EOVERFLOW, total);
}

const GuardWatch* Core::running_guard() noexcept {
  Core* core = t_current;
  return core != nullptr && core->current_ != nullptr ? &core->current_->guard : nullptr;
}

Result<void> Core::init() noexcept {
  // A Runtime can be started again after a stop: nothing of the last run may linger.
  stop_seen_ = false;
  current_ = nullptr;
  closing_.store(false, std::memory_order_seq_cst);
  t_current = this;
  thread_id_.store(static_cast<int>(::gettid()), std::memory_order_release);
  context_adopt_thread(scheduler_);
  set_guard_lookup(&running_guard);
  if (Result<void> handler = install_overflow_handler(); !handler) return handler;
  if (config_.run_budget == 0) return make_error_code(errc::invalid_argument);  // nothing would ever run
  if (config_.coalesce_window < Duration::zero() || config_.coalesce_window > std::chrono::seconds(1) ||
      config_.coalesce_batch == 0) {
    return make_error_code(errc::invalid_argument);
  }
  auto backend = create_backend(config_.backend, {config_.ring_entries, config_.cq_entries});
  if (!backend) return backend.error();
  backend_ = std::move(*backend);
  wheel_.emplace(std::chrono::duration_cast<std::chrono::nanoseconds>(config_.timer_tick), Clock::now());
  events_ = runtime_.event_layers().make_core(*this);
  if (!events_) return make_error_code(errc::out_of_memory);
  backend_->set_overflow_hook(&note_cq_overflow, this);
  if (Result<void> arena = init_arena(); !arena) return arena;
  const std::size_t initial = std::min(config_.capsules_per_core, config_.max_capsules);
  if (initial > 0) {
    if (Result<void> grown = grow_pool(initial); !grown) return grown;
  }
  (void)snapshot_metrics();  // readers see the fresh pool before the loop answers them
  return {};
}

Result<void> Core::init_arena() noexcept {
  // The arena is made once and kept across restarts: EventData handed out in one run may be
  // freed in the next. The start barrier orders the last thread's use before this adoption.
  if (arena_) {
    arena_->adopt_current_thread();
    return {};
  }
  try {
    arena_ = std::make_unique<BuddyArena>(events_->arena_config(config_.arena));
  } catch (const std::invalid_argument&) {
    return make_error_code(errc::invalid_argument);
  } catch (const std::system_error& e) {
    return e.code();
  } catch (const std::bad_alloc&) {
    return make_error_code(errc::out_of_memory);
  }
  return {};
}

Result<void> Core::grow_pool(std::size_t count) noexcept {
  for (std::size_t i = 0; i < count; ++i) {
    auto mapping = map_guarded_stack(config_.stack_size, sizeof(CapsuleControl));
    if (!mapping) return mapping.error();
    auto* capsule = new (mapping->top_reserve) CapsuleControl();
    capsule->stack = *mapping;
    capsule->core = this;
    capsule->timer.owner = capsule;
    capsule->timer.fire = &on_wait_deadline;
    capsule->guard.guard_high = reinterpret_cast<std::uintptr_t>(mapping->usable);
    const std::uintptr_t base = reinterpret_cast<std::uintptr_t>(mapping->base);
    capsule->guard.guard_low = base > kGuardSlack ? base - kGuardSlack : 0;
    // Name the size the application asked for (page-rounded), not the slack above it.
    const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    capsule->guard.stack_kib = (config_.stack_size + page - 1) / page * page / 1024;
    context_make(capsule->context, mapping->usable, mapping->usable_size, &capsule_main, capsule);
    capsule->all_next = all_;
    all_ = capsule;
    ++capsules_;
    recycle(capsule);
  }
  return {};
}

Result<void> Core::refill_pool() noexcept {
  if (capsules_ >= config_.max_capsules) return make_error_code(errc::resource_limit);
  const std::size_t want = std::min(std::max<std::size_t>(capsules_, 16), config_.max_capsules - capsules_);
  Result<void> grown = grow_pool(want);
  if (!grown) {
    // Counted and reported even when a partial growth still serves this spawn: a pool that
    // cannot grow is the first sign of vm.max_map_count or memory running out.
    ++pool_shortfalls_;
    events_->raise_error(Subsystem::capsule_pool, ENOMEM, pool_shortfalls_);
    if (pool_ == nullptr) return grown.error();
  }
  return {};
}

void Core::wake_remote(CapsuleControl* capsule) noexcept {
  Core* home = capsule->core;
  capsule->mail.owner = capsule;
  capsule->mail.kind = kMailWake;
  home->post(&capsule->mail);
}

void Core::post(MailNode* node) noexcept {
  AEM_PROBE_CROSS_CORE_POST(t_current != nullptr ? static_cast<int>(t_current->index_) : -1, index_, node->kind);
  mailbox_.push(node);
  notify();
}

void Core::notify() noexcept {
  // A thread that is not a core may notify while this core tears down: announce ourselves so
  // teardown waits before it closes the backend, and stay away once it is closing.
  notifiers_.fetch_add(1, std::memory_order_seq_cst);
  // Pairs with the fence in idle(): either the core sees our message before it sleeps, or we
  // see that it sleeps and wake it.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (!closing_.load(std::memory_order_seq_cst) && sleeping_.load(std::memory_order_relaxed) &&
      sleeping_.exchange(false, std::memory_order_acq_rel)) {
    wake_sent_ns_.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);  // IdleSpin::woken
    backend_->wake(t_current != nullptr ? t_current->backend_.get() : nullptr);
  }
  notifiers_.fetch_sub(1, std::memory_order_release);
}

// ---- switching -------------------------------------------------------------------------

void Core::capsule_main(void* arg) {
  auto* self = static_cast<CapsuleControl*>(arg);
  for (;;) {
    TaskState* task = self->task;
    // The state an own_fp_env task starts from (the inline switch installed it already;
    // fcontext resumed the capsule with whatever it had last).
    if (self->context.own_fp_env) fp_load(self->context.fp);
    task->run(task);
#if !AEM_INLINE_SWITCH
    // The fcontext switch carries an own_fp_env capsule's state along (context.cpp): hand the
    // next task the one this one got.
    if (self->context.own_fp_env) fp_load(self->context.fp);
#endif
    Core* core = self->core;
    AEM_PROBE_CAPSULE_EXIT(core->index_, self->guard.capsule_id);
    const bool frame_home = task->home == TaskHome::capsule_frame;
    self->state = CapsuleState::finished;
    CapsuleControl* joiner = core->complete(task);
    // A task in the capsule's frame keeps the capsule until its handle lets go; complete()
    // recycled it already if the handle was gone.
    if (!frame_home) core->recycle(self);
    core->finish_switch(self, joiner);
  }
}

// ---- task life -------------------------------------------------------------------------

CapsuleControl* Core::complete(TaskState* task) noexcept {
  if (task->policy_holds != 0) [[unlikely]] events_->release_task(task);  // before it may vanish
  const bool root = runtime_.is_root(task);
  // While a joiner is parked on the task, or its handle is gone, nobody else touches `flags`:
  // a plain store will do. Otherwise the handle may be joined or dropped on another core at
  // this very moment, and only an atomic exchange settles who was first.
  std::uint32_t prior = task->flags.load(std::memory_order_acquire);
  if ((prior & (TaskState::kJoinWaiting | TaskState::kReleased)) != 0) {
    task->flags.store(prior | TaskState::kFinished, std::memory_order_release);
  } else {
    prior = task->flags.fetch_or(TaskState::kFinished, std::memory_order_acq_rel);
  }
  // From here a caller-owned task may vanish unless a joiner is parked on it.
  CapsuleControl* local_joiner = nullptr;
  if ((prior & TaskState::kJoinWaiting) != 0) {
    auto* joiner = static_cast<CapsuleControl*>(task->joiner);
    if (joiner->core == this) local_joiner = joiner;
    else wake_remote(joiner);
  }
  if ((prior & TaskState::kReleased) != 0) dispose_task(task);
  if (root) runtime_.request_stop();
  const std::int64_t left = live_.load(std::memory_order_relaxed) - 1;
  live_.store(left, std::memory_order_release);
  if (left == 0 && runtime_.stopping()) runtime_.notify_all();
  return local_joiner;
}

void Core::dispose_task(TaskState* task) noexcept {
  switch (task->home) {
    case TaskHome::capsule_frame: {
      auto* capsule = static_cast<CapsuleControl*>(task->capsule);
      task->dispose(task);
      recycle(capsule);
      break;
    }
    case TaskHome::heap:
      task->dispose(task);
      task_free(task);
      break;
    case TaskHome::caller:
      break;
  }
}

void Core::start_remote_task(TaskState* task) noexcept {
  // Accepted before the stop or by a capsule that is still live: it runs even while stopping.
  auto capsule = acquire_capsule();
  if (!capsule) {
    // No capsule to run it: report the failure to whoever waits for the outcome.
    task->launch_error = capsule.error();
    task->run(task);
    if (CapsuleControl* joiner = complete(task)) make_ready(joiner);
    return;
  }
  // A heap task carries its spawn site, if any (spawn_elsewhere); see TaskState.
  const SiteRecord* site = task->home == TaskHome::heap ? task->site : nullptr;
  launch(*capsule, task, site);
}

// ---- the loop --------------------------------------------------------------------------

bool Core::drain_mail() noexcept {
  bool any = false;
  while (MailNode* node = mailbox_.pop()) {
    any = true;
    switch (node->kind) {
      case kMailWake:
        make_ready(static_cast<CapsuleControl*>(node->owner));
        break;
      case kMailRecycle: {
        auto* capsule = static_cast<CapsuleControl*>(node->owner);
        dispose_task(capsule->task);
        break;
      }
      case kMailLend:
      case kMailTakeBack:
        PriorityInheritance::arrived(*this, node);
        break;
      case kMailSpawn:
        count_task();  // before un-counting it as incoming: the sum never dips to zero
        incoming_.fetch_sub(1, std::memory_order_seq_cst);
        start_remote_task(static_cast<TaskState*>(node->owner));
        break;
      case kMailRun: {
        // In mailbox order, with no capsule: a capsule (at its task's priority, or none free)
        // would let a later message's task run before it.
        count_task();
        incoming_.fetch_sub(1, std::memory_order_seq_cst);
        auto* task = static_cast<TaskState*>(node->owner);
        task->run(task);
        if (CapsuleControl* joiner = complete(task)) make_ready(joiner);
        break;
      }
      default:
        break;
    }
  }
  return any;
}

void Core::on_wait_deadline(CoreTimer* timer) noexcept {
  auto* capsule = static_cast<CapsuleControl*>(timer->owner);
  Waiter* waiter = capsule->waiter;
  if (waiter == nullptr) return;
  WakeReason expected = WakeReason::pending;
  if (waiter->reason.compare_exchange_strong(expected, WakeReason::timed_out, std::memory_order_acq_rel)) {
    capsule->core->make_ready(capsule);
  }
}

void Core::expire_timers() noexcept {
  if (wheel_->empty()) return;
  wheel_->advance(Clock::now(), [](TimerNode& node) {
    auto* timer = reinterpret_cast<CoreTimer*>(&node);
    timer->fire(timer);
  });
}

void Core::run_ready() noexcept {
  turn_end_ = progress_.load(std::memory_order_relaxed) + config_.run_budget;
  while (progress_.load(std::memory_order_relaxed) < turn_end_) {
    CapsuleControl* next = ready_.pop();
    if (next == nullptr) break;
    resume_from_loop(next);  // counts as progress: one switch of the budget
  }
}

void Core::on_stop() noexcept {
  stop_seen_ = true;
  events_->cancel_all();  // no timer starts a task from now on
  runtime_.note_core_stopped();
  // Wake every capsule parked in an interruptible wait: it unwinds (see throw_forced_unwind).
  for (CapsuleControl* capsule = all_; capsule != nullptr; capsule = capsule->all_next) {
    Waiter* waiter = capsule->waiter;
    if (capsule->state != CapsuleState::suspended || waiter == nullptr || !waiter->interruptible) continue;
    WakeReason expected = WakeReason::pending;
    if (waiter->reason.compare_exchange_strong(expected, WakeReason::interrupted, std::memory_order_acq_rel)) {
      if (capsule->timer.node.armed()) wheel_->cancel(capsule->timer.node);
      make_ready(capsule);
    }
  }
  backend_->cancel_all();
}

bool Core::can_exit() const noexcept {
  // In-flight operations too: a registration's record and receive buffers must outlive them.
  // No live task anywhere first, then an empty mailbox: a capsule that posted here and then
  // finished (a priority lend) is seen finished only after its message is visible.
  if (!stop_seen_ || !ready_.empty() || backend_->in_flight() != 0 || !runtime_.all_cores_stopped()) return false;
  if (runtime_.live_total() != 0) return false;
  return mailbox_.empty();
}

void Core::idle() noexcept {
  note_progress();  // the poll below is no stall; the sleep is marked by sleeping_
  TimePoint deadline = wheel_->next_wakeup();
  // Deferred work (activations waiting for a capsule, receives waiting for buffers) may become
  // possible through frees from other cores, which do not wake this one: look again soon.
  if (events_->has_deferred()) deadline = std::min(deadline, Clock::now() + std::chrono::milliseconds(1));
  // Coalescing (Config::coalesce_window) starts after a stretch with I/O and ends with a window
  // that brought none. It skips the spin, which would take completions one at a time. Not
  // while stopping: the cancellations' completions would make every turn of it wait a window.
  const bool coalesce = io_seen_ && !stop_seen_ && config_.coalesce_window > Duration::zero() &&
                        backend_->in_flight() > 0;
  io_seen_ = false;
  // The poll adapts (IdleSpin) to the idle stretches it sees; coalescing sleeps do not poll.
  const bool polls = !coalesce && config_.idle_spin > Duration::zero();
  const TimePoint idle_start = polls ? Clock::now() : TimePoint{};
  TimePoint polled_until = idle_start;
  TimePoint poll_until = idle_start + spin_.window();
  // A capsule waiting for another core's reply: poll long enough for a reply from a core that
  // must be woken first (IdleSpin::awaiting_window), but no longer once the reply is overdue.
  if (polls && remote_waits_ != 0) poll_until = std::max(poll_until, remote_wait_since_ + spin_.awaiting_window());
  if (polls && poll_until > idle_start) {
    const bool found = poll_for_work(idle_start, std::min(deadline, poll_until));
    polled_until = Clock::now();
    metrics_.add_spin(polled_until - idle_start);
    if (found) return;
  }
  sleeping_.store(true, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (!mailbox_.empty() || nudged_.load(std::memory_order_relaxed) || metrics_.requested() ||
      runtime_.stopping() != stop_seen_ || can_exit()) {
    sleeping_.store(false, std::memory_order_relaxed);
    return;
  }
  // After a poll the clock was just read: the checks since then take nanoseconds.
  const TimePoint slept = polls ? polled_until : Clock::now();
  unsigned min_completions = 1;
  if (coalesce) {
    deadline = std::min(deadline, slept + std::chrono::duration_cast<Duration>(config_.coalesce_window));
    min_completions = config_.coalesce_batch;
  }
  io_seen_ = backend_->wait(deadline, min_completions) > 0;
  const TimePoint woke = Clock::now();
  note_progress();  // before sleeping_ clears: the watchdog never sees the sleep as a stall
  metrics_.add_idle(woke - slept);
  if (polls) {
    // Woken by another thread's message: judged by when the message came (IdleSpin::woken). A
    // stamp from before this stretch is a late one of the last (its notifier stamped after we
    // had looked).
    const std::int64_t sent = wake_sent_ns_.exchange(0, std::memory_order_relaxed);
    const TimePoint arrived{Duration(sent)};
    if (arrived >= idle_start && arrived <= woke) spin_.woken(woke - idle_start, arrived - idle_start);
    else spin_.slept(woke - idle_start);
  }
  sleeping_.store(false, std::memory_order_relaxed);
}

bool Core::poll_for_work(TimePoint now, TimePoint until) noexcept {
  // Where has_work() reads the rings (io_uring with TASKRUN_FLAG) the poll watches them and
  // enters the kernel only for work; elsewhere every look at the backend is a system call.
  const bool exact = backend_->features().taskrun_flag;
  for (unsigned i = 1; now < until; ++i) {
    if (!mailbox_.empty() || nudged_.load(std::memory_order_relaxed)) return true;
    if (exact && (i & 7) == 0 && backend_->has_work() && poll_io()) return true;
    if ((i & 63) == 0) {
      note_progress();
      now = Clock::now();
      if (!exact && backend_->in_flight() > 0 && poll_io()) return true;
    }
    cpu_relax();
  }
  return false;
}

void Core::loop() noexcept {
  metrics_.set_serving(true);
  for (;;) {
    metrics_.count_loop_turn();
    note_progress();
    serve_metrics();
    // Timers first: switching hands control back here early when one is due (timers_due).
    expire_timers();
    drain_mail();
    // Cleared before the retry it asks for, so a nudge during the retry is seen by idle().
    if (nudged_.load(std::memory_order_relaxed)) nudged_.store(false, std::memory_order_seq_cst);
    if (events_->has_deferred()) events_->run_deferred();
    arena_->drain_remote_frees();  // one relaxed load when nothing came back
    run_ready();
    if (backend_->has_work()) poll_io();
    if (!ready_.empty() || !mailbox_.empty() || events_->bursts_can_go()) continue;
    if (runtime_.stopping()) {
      if (!stop_seen_) {
        on_stop();  // wakes parked capsules: run them before anything else
        continue;
      }
      if (can_exit()) break;
    }
    idle();
  }
  (void)snapshot_metrics();  // the last word, for readers after the stop
  metrics_.set_serving(false);
}

void Core::teardown() noexcept {
  closing_.store(true, std::memory_order_seq_cst);
  while (notifiers_.load(std::memory_order_acquire) != 0) cpu_relax();
  while (all_ != nullptr) {
    CapsuleControl* capsule = all_;
    all_ = capsule->all_next;
    context_release(capsule->context);
    StackMapping mapping = capsule->stack;
    capsule->~CapsuleControl();
    unmap_stack(mapping);
  }
  pool_ = nullptr;
  capsules_ = 0;
  events_.reset();
  backend_.reset();
  wheel_.reset();
  remove_thread_altstack();
  if (t_current == this) t_current = nullptr;
}

}  // namespace aem::detail
