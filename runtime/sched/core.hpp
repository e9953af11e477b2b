// core.hpp — one scheduler core: a pinned thread that owns a capsule pool, a priority ready
// queue, a timer wheel, a mailbox, an I/O backend (io_uring, or the epoll fallback) and an
// arena, with the event layer above it reached through EventLayer. Each turn of its loop:
//   expire due timers → take the mailbox (cross-core spawns, wakes, posts) → run the event
//   layer's deferred activations → take remote frees back into the arena → run ready capsules
//   (a budget per turn) → reap I/O completions → when nothing is ready: poll the mailbox and the
//   backend for a while that adapts to how long the core idles (IdleSpin), then sleep in the
//   backend until a completion, a timer or a wake-up (or, coalescing after a busy stretch,
//   sleep a short window to take completions in a batch).
// Everything here runs on the core's own thread unless a comment says "any thread".
#pragma once

#include "base/probes.hpp"
#include "io/backend.hpp"
#include "runtime/sched/capsule_control.hpp"
#include "runtime/fiber/context.hpp"
#include "runtime/sched/event_layer.hpp"
#include "runtime/sched/idle_spin.hpp"
#include "runtime/sched/metrics_cell.hpp"
#include "runtime/sched/mpsc_queue.hpp"
#include "runtime/sched/ready_queue.hpp"
#include "runtime/sched/timer_wheel.hpp"

#include <aem/arena.hpp>
#include <aem/config.hpp>
#include <aem/result.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>

namespace aem::detail {

class RuntimeImpl;

class Core {
 public:
  Core(RuntimeImpl& runtime, unsigned index) noexcept;
  ~Core();
  Core(const Core&) = delete;
  Core& operator=(const Core&) = delete;

  // init creates the ring, the wheel and the first capsules. Call on the core's thread.
  Result<void> init() noexcept;
  // loop runs until the runtime is stopping and no task is live on any core.
  void loop() noexcept;
  // teardown unmaps the capsules and closes the ring, once every core has left its loop.
  void teardown() noexcept;

  // current_core returns the core of the calling thread, or nullptr.
  static Core* current_core() noexcept { return t_current; }
  // api_caller returns the calling thread's core if the caller may use the runtime's API
  // there — a capsule, or an inline handler on the core's dispatcher — else nullptr.
  // `in_capsule` tells which: an inline handler may not suspend.
  static Core* api_caller(bool& in_capsule) noexcept {
    Core* core = t_current;
    if (core == nullptr || core->events_ == nullptr) return nullptr;
    in_capsule = core->current_ != nullptr;
    if (!in_capsule && !core->events_->in_inline_handler()) return nullptr;
    return core;
  }
  static Core* api_caller() noexcept {
    bool in_capsule = false;
    return api_caller(in_capsule);
  }
  // suspension_refused is the error of a call that would suspend its caller but finds no
  // capsule to suspend: errc::inline_handler_blocked inside an inline handler on a core's
  // dispatcher (counted in the registration's EventInfo::blocked: the handler broke its
  // promise not to block), else errc::not_in_capsule. Every suspending call that returns its
  // errors refuses through this, so all report the same code for the same cause. Any thread.
  static std::error_code suspension_refused() noexcept {
    Core* core = t_current;
    if (core != nullptr && core->current_ == nullptr && core->events_ != nullptr && core->events_->note_inline_block()) {
      return make_error_code(errc::inline_handler_blocked);
    }
    return make_error_code(errc::not_in_capsule);
  }

  unsigned index() const noexcept { return index_; }
  RuntimeImpl& runtime() noexcept { return runtime_; }
  Backend& backend() noexcept { return *backend_; }
  TimerWheel& wheel() noexcept { return *wheel_; }
  // events is the core's event layer (registrations, sources, dispatcher), made by init.
  EventLayer* events() noexcept { return events_.get(); }
  // arena is the core's event-data arena; it outlives restarts (see this_core::arena).
  BuddyArena& arena() noexcept { return *arena_; }
  // metrics is the core's MetricsCell: its owner (this core's thread) counts there, e.g. the
  // event table: metrics().count_activation(p) / count_delivery(p) / count_lost(p, n). Any
  // thread may read it.
  MetricsCell& metrics() noexcept { return metrics_; }
  // snapshot_metrics takes, publishes and returns this core's metrics. Call on its thread.
  CoreMetrics snapshot_metrics() noexcept;
  // serve_metrics publishes a snapshot if a reader asked for one. Call on this core's thread.
  void serve_metrics() noexcept {
    if (metrics_.requested()) (void)snapshot_metrics();
  }
  // current returns the running capsule, or nullptr in the scheduler.
  CapsuleControl* current() const noexcept { return current_; }

  // acquire_capsule takes a capsule from the pool, growing the pool when it is empty.
  // Errors: errc::resource_limit (Config::max_capsules), errc::map_count_limit, errno.
  // Inline: a spawn takes this path every time, and the pool is rarely empty.
  Result<CapsuleControl*> acquire_capsule() noexcept {
    if (pool_ == nullptr) {
      if (Result<void> refilled = refill_pool(); !refilled) return refilled.error();
    }
    CapsuleControl* capsule = pool_;
    pool_ = capsule->ready_next;
    return capsule;
  }
  // has_pooled_capsule tells whether acquire_capsule can succeed without growing the pool.
  bool has_pooled_capsule() const noexcept { return pool_ != nullptr; }
  // launch makes `capsule` run `task` (counted already, its runner set to this core before it
  // was handed over: a joiner on another core reads it) at the task's priority. `site` is where
  // it was spawned (SpawnOptions::site), nullptr where unknown.
  void launch(CapsuleControl* capsule, TaskState* task, const SiteRecord* site = nullptr) noexcept {
    capsule->task = task;
    capsule->site = site;
    capsule->priority = capsule->base_priority = task->priority;
    capsule->owed = Priority::idle;
    capsule->context.own_fp_env = task->own_fp_env;
    if (task->own_fp_env) capsule->context.fp = fp_shared(current_ != nullptr ? current_->context : scheduler_);
    // The fault handler reports this id, so the guard holds the capsule's one copy of it.
    capsule->guard.capsule_id = (static_cast<CapsuleId>(index_) << 56) | next_sequence_++;
    AEM_PROBE_SPAWN(index_, capsule->guard.capsule_id, task->priority);
    capsule->spawned_ns = g_diag_clock_ns.load(std::memory_order_relaxed);
    if (task->home == TaskHome::capsule_frame) task->capsule = capsule;
    make_ready(capsule);
  }
  // reprioritize gives `capsule` (of this core) priority `priority`; a ready one moves to that
  // level of the ready queue at once (behind the capsules already there). Used by the event
  // table to boost a keepalive capsule by the activations queued for it.
  void reprioritize(CapsuleControl* capsule, Priority priority) noexcept {
    if (capsule->priority == priority) return;
    if (priority > capsule->priority) metrics_.count_priority_boost();
    if (capsule->state == CapsuleState::ready && ready_.remove(capsule)) {
      capsule->priority = priority;
      ready_.push(capsule);
      return;
    }
    capsule->priority = priority;
  }
  // make_ready queues a suspended capsule of this core.
  void make_ready(CapsuleControl* capsule) noexcept {
    capsule->state = CapsuleState::ready;
    ready_.push(capsule);
  }
  // Own and inherited priorities (priority_inheritance.cpp). Call on this core's
  // thread, for a capsule of this core (ready, suspended or the running one). reprioritize
  // above sets the priority a capsule is scheduled at and leaves base_priority alone, so the
  // next restore_priority undoes it.
  //   set_base_priority makes `p` the capsule's own priority (this_capsule::set_priority) and
  //   reschedules it at max(p, what it inherits from the mutexes it holds).
  //   restore_priority reschedules it at max(base_priority, owed, what it inherits).
  void set_base_priority(CapsuleControl& capsule, Priority p) noexcept;
  void restore_priority(CapsuleControl& capsule) noexcept;
  // suspend parks the running capsule until someone calls make_ready / wake on it.
  void suspend() noexcept {
    CapsuleControl* self = current_;
    self->state = CapsuleState::suspended;
    switch_away(self);
  }
  // yield requeues the running capsule behind the ready capsules of its level. With nobody
  // else ready it stays, unless the loop has work (mail, I/O completions, a due timer, deferred
  // activations, a nudge, a metrics reader waiting): a capsule spinning on yield() must not
  // starve the loop.
  //
  // The branch hints mark the common case of a busy core (another capsule ready, budget left):
  // a yield is a few dozen instructions, and a taken branch on its way is a share of it.
  void yield() noexcept {
    CapsuleControl* self = current_;
    const bool direct = may_switch_directly();
    if (direct) [[likely]] {
      // Two capsules taking turns: the other one is all that is ready (exchange_only fails on
      // an empty queue too, so the common case asks nothing else first).
      if (CapsuleControl* next = ready_.exchange_only(self)) [[likely]] {
        self->state = CapsuleState::ready;
        switch_to(self, next);
        return;
      }
    }
    if (ready_.empty()) [[unlikely]] {
      // A capsule spinning on yield() alone still gives the loop its chances: no stall. Also
      // what makes timers_due() look at the clock on every 8th such yield.
      note_progress();
      if (mailbox_.empty() && !backend_->has_work() && !timers_due() && !events_->has_deferred() &&
          !nudged_.load(std::memory_order_relaxed) && !metrics_.requested()) {
        return;
      }
      make_ready(self);
      leave(self, false);
      return;
    }
    make_ready(self);
    leave(self, direct);
  }
  // recycle returns a capsule whose task is disposed of to the pool (a LIFO free list: the
  // next spawn reuses the stack that is warmest in the caches).
  void recycle(CapsuleControl* capsule) noexcept {
    capsule->state = CapsuleState::pooled;
    capsule->task = nullptr;
    capsule->ready_next = pool_;
    pool_ = capsule;
  }

  // wake makes `capsule` ready on its own core. Any thread.
  static void wake(CapsuleControl* capsule) noexcept {
    if (capsule->core == t_current) capsule->core->make_ready(capsule);
    else wake_remote(capsule);
  }
  static void wake_remote(CapsuleControl* capsule) noexcept;
  // post delivers `node` to this core's mailbox and wakes the core if it sleeps. Any thread.
  void post(MailNode* node) noexcept;
  // run_on_dispatcher hands `task` (one that never suspends) to this core, which runs it on its
  // dispatcher as it takes it from the mailbox, in mailbox order, with no capsule (kMailRun).
  // Any thread.
  void run_on_dispatcher(TaskState* task) noexcept {
    task->runner = this;
    count_incoming();
    task->mail.owner = task;
    task->mail.kind = kMailRun;
    post(&task->mail);
  }
  // notify wakes the core if it sleeps, so it re-reads the runtime's state. Any thread.
  void notify() noexcept;
  // nudge makes the core take another turn of its loop, retrying its deferred activations, even
  // if it was about to sleep: another core freed what they wait for (a max_active slot). Any
  // thread.
  void nudge() noexcept {
    nudged_.store(true, std::memory_order_seq_cst);
    notify();
  }
  // Task accounting, so that a stopping runtime knows when nothing is left anywhere:
  // count_task (this core) counts a task it starts; count_incoming (any thread) one that
  // another thread hands it through the mailbox, until it picks it up; uncount_incoming
  // takes that back when the hand-over is refused. outstanding (any thread) sums both.
  void count_task() noexcept { live_.store(live_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }
  void count_incoming() noexcept { incoming_.fetch_add(1, std::memory_order_seq_cst); }
  void uncount_incoming() noexcept { incoming_.fetch_sub(1, std::memory_order_seq_cst); }
  std::int64_t outstanding() const noexcept {
    // incoming first: a pick-up raises live_ before it lowers incoming_.
    const std::int64_t incoming = incoming_.load(std::memory_order_seq_cst);
    return incoming + live_.load(std::memory_order_seq_cst);
  }

  // complete settles a finished task with its handle (wakes a joiner, disposes of the task if
  // the handle is gone) and un-counts it. A joiner on this core is not queued but returned: the
  // caller must make it ready, or switch to it directly (see finish_switch).
  [[nodiscard]] CapsuleControl* complete(TaskState* task) noexcept;
  // dispose_task destroys a task nobody needs any more (and recycles its frame's capsule).
  void dispose_task(TaskState* task) noexcept;

  std::size_t capsules() const noexcept { return capsules_; }
  // begin_remote_wait / end_remote_wait bracket the suspension of a capsule of this core that
  // waits for another core's reply (a join of a task running there): until the reply is
  // overdue (IdleSpin::awaiting_window after the latest such wait began) the idle core polls
  // longer. Call on this core's thread.
  void begin_remote_wait() noexcept {
    ++remote_waits_;
    remote_wait_since_ = Clock::now();
  }
  void end_remote_wait() noexcept { --remote_waits_; }
  // Diagnostics (runtime/diag). progress counts the core's loop turns and capsule switches:
  // a value that stays put while the core is not asleep is a stall. Any thread.
  std::uint64_t progress() const noexcept { return progress_.load(std::memory_order_relaxed); }
  // asleep tells whether the core waits in the kernel for work (never a stall). Any thread.
  bool asleep() const noexcept { return sleeping_.load(std::memory_order_relaxed); }
  // thread_id is the kernel's id of the core's thread while it runs (0 before). Any thread.
  int thread_id() const noexcept { return thread_id_.load(std::memory_order_acquire); }
  // capsule_list is every capsule of the core, pooled ones too, through all_next. Core thread.
  CapsuleControl* capsule_list() const noexcept { return all_; }
  unsigned run_budget() const noexcept { return config_.run_budget; }

 private:
  static const GuardWatch* running_guard() noexcept;
  static void capsule_main(void* arg);
  static void on_wait_deadline(CoreTimer* timer) noexcept;
  static void note_cq_overflow(void* core, std::uint64_t total) noexcept;
  // switch_away leaves `from` (suspended, ready or finished) for the next ready capsule, or for
  // the scheduler when none is ready or the turn's budget is spent.
  void switch_away(CapsuleControl* from) noexcept { leave(from, may_switch_directly()); }
  // finish_switch leaves the finished capsule `from` for the next one to run, where `woken`
  // (or nullptr) is a capsule its task's completion has just woken. When nothing else is
  // ready, `woken` is exactly what the ready queue would hand out next (an empty queue has
  // passed over nothing, so no starvation turn is due): it is switched to directly.
  void finish_switch(CapsuleControl* from, CapsuleControl* woken) noexcept {
    const bool direct = may_switch_directly();
    if (woken != nullptr) {
      if (direct && ready_.empty()) {
        switch_to(from, woken);
        return;
      }
      make_ready(woken);
    }
    leave(from, direct);
  }
  // may_switch_directly tells whether the next capsule may be switched to without a trip
  // through the scheduler: the turn has budget left and no timer is due. The budget is counted
  // by the watchdog's progress counter, which every switch advances: one counter for both.
  bool may_switch_directly() noexcept { return progress_.load(std::memory_order_relaxed) < turn_end_ && !timers_due(); }
  // leave switches from `from` to the next ready capsule if `direct`, else to the scheduler.
  void leave(CapsuleControl* from, bool direct) noexcept {
    CapsuleControl* next = direct ? ready_.pop() : nullptr;
    if (next == from) {  // a yield with nobody of its level or above to run
      // It costs the turn's budget all the same: a capsule yielding in a loop must not keep
      // the core from its mailbox (cross-core wakes, lends) and completions forever.
      from->state = CapsuleState::running;
      note_progress();
      return;
    }
    if (next != nullptr) {
      switch_to(from, next);  // straight to the next capsule, not via the scheduler
    } else {
      AEM_PROBE_TO_SCHEDULER(index_, from->guard.capsule_id);
      current_ = nullptr;
      context_switch(from->context, scheduler_);
    }
  }
  // timers_due tells capsule-to-capsule switching to go back to the scheduler when a timer
  // has expired, so a turn of busy capsules delays timers by a few capsules, not a whole turn.
  // The clock is read on every 8th switch, and only while timers are armed.
  bool timers_due() noexcept {
    if (wheel_->empty() || (progress_.load(std::memory_order_relaxed) & 7u) != 0) return false;
    return Clock::now() >= wheel_->next_wakeup();
  }
  // switch_to runs `next` in place of the running capsule `from`; resume_from_loop runs it from
  // the core's loop. Two functions so that the switch probe's arguments are plain fields of
  // capsules at hand (operands the probe's note names, no instruction computes them).
  void switch_to(CapsuleControl* from, CapsuleControl* next) noexcept {
    note_progress();
    next->state = CapsuleState::running;
    AEM_PROBE_SWITCH(index_, from->guard.capsule_id, next->guard.capsule_id);
    current_ = next;
    context_switch(from->context, next->context);
  }
  void resume_from_loop(CapsuleControl* next) noexcept {
    note_progress();
    next->state = CapsuleState::running;
    AEM_PROBE_SWITCH(index_, loop_capsule_id_, next->guard.capsule_id);
    current_ = next;
    context_switch(scheduler_, next->context);
  }
  // note_progress tells the stall watchdog that the core moved on: one relaxed store.
  void note_progress() noexcept { progress_.store(progress_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }
  void run_ready() noexcept;
  bool drain_mail() noexcept;
  void expire_timers() noexcept;
  void idle() noexcept;
  // poll_io polls the backend and notes in io_seen_ whether it delivered anything.
  bool poll_io() noexcept {
    const bool delivered = backend_->poll() > 0;
    io_seen_ = io_seen_ || delivered;
    return delivered;
  }
  // poll_for_work polls the mailbox and the backend from `now` until `until`: true when work
  // came.
  bool poll_for_work(TimePoint now, TimePoint until) noexcept;
  void start_remote_task(TaskState* task) noexcept;
  void on_stop() noexcept;
  bool can_exit() const noexcept;
  Result<void> grow_pool(std::size_t count) noexcept;
  Result<void> refill_pool() noexcept;
  Result<void> init_arena() noexcept;

  RuntimeImpl& runtime_;
  const unsigned index_;
  const Config& config_;
  Context scheduler_;
  CapsuleControl* current_ = nullptr;
  ReadyQueue<CapsuleControl> ready_;
  CapsuleControl* pool_ = nullptr;
  CapsuleControl* all_ = nullptr;
  std::size_t capsules_ = 0;
  std::uint64_t pool_shortfalls_ = 0;  // pool growths that mapped fewer stacks than wanted
  std::unique_ptr<Backend> backend_;
  std::optional<TimerWheel> wheel_;  // in place: the switch path asks whether it is empty
  std::unique_ptr<EventLayer> events_;
  std::unique_ptr<BuddyArena> arena_;
  // progress_ counts the core's switches, loop turns and polls: written by this core only, read
  // by the watchdog. A turn of the loop may run capsules until it reaches turn_end_
  // (Config::run_budget switches).
  std::atomic<std::uint64_t> progress_{0};
  std::uint64_t turn_end_ = 0;
  std::atomic<int> thread_id_{0};
  std::uint64_t next_sequence_ = 1;
  // The "from" of a switch probe fired in the loop: always 0, but a field, not a constant (perf
  // refuses a probe whose argument is an immediate).
  std::uint64_t loop_capsule_id_ = 0;
  bool stop_seen_ = false;
  bool io_seen_ = false;  // completions delivered since the core last went idle (coalescing)
  IdleSpin spin_;
  unsigned remote_waits_ = 0;  // capsules of this core waiting for another core (begin_remote_wait)
  TimePoint remote_wait_since_{};  // when the latest of them began
  MpscQueue mailbox_;
  alignas(64) std::atomic<bool> sleeping_{false};
  // When the notifier that ended the core's last sleep found it asleep (Clock ns; 0: none since
  // the core last looked). IdleSpin::woken judges the sleep by it.
  std::atomic<std::int64_t> wake_sent_ns_{0};
  std::atomic<bool> nudged_{false};  // nudge() since the loop's last turn
  std::atomic<bool> closing_{false};
  std::atomic<int> notifiers_{0};
  alignas(64) std::atomic<std::int64_t> live_{0};  // written by this core only
  std::atomic<std::int64_t> incoming_{0};
  MetricsCell metrics_;
  inline static thread_local Core* t_current = nullptr;
};

}  // namespace aem::detail
