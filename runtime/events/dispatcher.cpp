// dispatcher.cpp — the Dispatcher: from activation to handler: the filter, the queue and its bound (a
// source that can wait is throttled, one that cannot reports Lost), the three executors, and
// the boost of a keepalive capsule by the activations queued behind it.
#include "runtime/sched/core.hpp"
#include "base/log.hpp"
#include "base/probes.hpp"
#include "runtime/events/dispatcher.hpp"
#include "runtime/events/event_table.hpp"
#include "runtime/events/socket_sources.hpp"
#include "runtime/sched/runtime_impl.hpp"
#include "alloc/task_memory.hpp"

#include <algorithm>
#include <exception>

namespace aem::detail {

// Activation is the task that runs a registration's handler: one activation (fresh_capsule),
// or every queued one in turn (keepalive). It lives in the frame of its capsule and is
// released from birth (nobody joins it).
struct Dispatcher::Activation final : TaskState {
  Dispatcher* dispatcher;
  Registration* registration;
  Payload payload;
  bool keepalive;
  Priority launched_at;  // its unstarted_ level (fresh capsules)

  Activation(Dispatcher* t, Registration* r, Payload* p, Priority at) noexcept
      : dispatcher(t),
        registration(r),
        payload(p != nullptr ? std::move(*p) : Payload()),
        keepalive(p == nullptr),
        launched_at(at) {
    run = &run_impl;
    dispose = &dispose_impl;
    home = TaskHome::capsule_frame;
    priority = at;
    group = r->group;  // a handler runs in its registration's group (held by the registration)
    flags.store(kReleased, std::memory_order_relaxed);
  }
  static void run_impl(TaskState* state) noexcept {
    auto* self = static_cast<Activation*>(state);
    Registration* r = self->registration;
    Dispatcher* dispatcher = self->dispatcher;
    if (self->keepalive) {
      // One at a time, in order, until nothing is queued (or it is disabled): then the capsule
      // goes back to the pool. No suspension between the last empty() and the flag, so no
      // activation is missed.
      auto* capsule = static_cast<CapsuleControl*>(self->capsule);
      while (!r->cancelled && !r->disabled && !r->queue.empty()) {
        Payload payload = dispatcher->take_next(r);
        // The activation's own priority is the capsule's while it serves it; it runs higher
        // while a more urgent activation waits behind it (owed), or a mutex waiter lends more.
        capsule->base_priority = dispatcher->priority_of(r, payload);
        capsule->owed = r->queue.empty() ? Priority::idle : r->pending_top;
        dispatcher->core_.restore_priority(*capsule);
        dispatcher->deliver(r, payload);
      }
      capsule->owed = Priority::idle;
      r->worker_active = false;
      r->worker = nullptr;
    } else {
      --dispatcher->unstarted_[static_cast<unsigned>(self->launched_at)];
      --dispatcher->unstarted_total_;
      --r->launched;
      // Cancelled after this activation was queued but before it started: cancel() promises
      // that no activation starts once it has returned.
      if (!r->cancelled) dispatcher->deliver(r, self->payload);
      else release_payload(r, self->payload);
    }
    dispatcher->activation_done(r);
  }
  static void dispose_impl(TaskState* state) noexcept { static_cast<Activation*>(state)->~Activation(); }
};

Dispatcher::Dispatcher(EventTable& table, SocketSources& sources, Core& core) noexcept
    : table_(table), sources_(sources), core_(core), core_index_(core.index()), burst_bound_(core.run_budget()) {}

// Defined `inline` (only this file calls it): an out-of-class member of a -fPIC library is
// otherwise a call on every activation, never inlined (it could be interposed).
inline Priority Dispatcher::priority_of(const Registration* r, const Payload& p) noexcept {
  return p.priority == kOwnPriority ? r->priority : static_cast<Priority>(p.priority);
}

void Dispatcher::pending_by_priority(std::uint64_t (&counts)[kPriorityLevels]) const noexcept {
  table_.for_each_in_use([&](const Registration& r) {
    r.queue.for_each([&](const Payload& p) {
      if (p.kind == PayloadKind::activation || p.kind == PayloadKind::error) {
        ++counts[static_cast<unsigned>(priority_of(&r, p))];
      }
    });
  });
}

void Dispatcher::activate(Registration* r, Payload& payload) noexcept {
  AEM_PROBE_ACTIVATION(core_index_, r->index, r->generation, r->kind);
  ++r->activated;
  core_.metrics().count_activation(priority_of(r, payload));
  if (r->extras != nullptr && !admit(r, payload)) return;
  if (!r->disabled && r->queue.empty()) {
    if (r->exec == Executor::fresh_capsule) {
      if (start_activation(r, &payload)) return;
    } else if (r->exec == Executor::inline_handler) {
      if (core_.current() == nullptr && inline_current_ == nullptr && (!r->policed || policy_enter(r))) {
        run_inline(r, payload);
        return;
      }
    }
  }
  // Queued: for the keepalive capsule, the dispatcher, a capsule of the pool, or enable().
  if (r->exec == Executor::fresh_capsule && !r->disabled) launch_past_bound(r);
  if (!enqueue(r, payload)) return;
  if (!r->disabled) kick(r);
}

// admit applies the registration's filter and notes its activity for the timeout.
bool Dispatcher::admit(Registration* r, Payload& p) noexcept {
  RegistrationExtras& x = *r->extras;
  if (x.filter) {
    ActivationView view;
    if (p.data) view.data = p.data.bytes();
    else if (p.shared) view.data = p.shared.bytes();
    view.value = p.value;
    if (p.error != 0) view.error = std::error_code(p.error, std::generic_category());
    bool pass = true;
    try {
      pass = x.filter(view);
    } catch (...) {
      log(LogLevel::warning, "the filter of %s threw; the activation passes", event_name(r->kind, table_.id_of(r)).text);
    }
    if (!pass) {
      ++r->filtered;
      release_payload(r, p);
      return false;
    }
  }
  if (x.timeout > Duration::zero()) x.last_activity = Clock::now();
  return true;
}

// post_notice hands a notice (a timeout) to the registration's executor, in order with its
// activations, past the queue bound: it is not an activation.
void Dispatcher::post_notice(Registration* r, Payload& payload) noexcept {
  if (!r->disabled && r->queue.empty()) {
    if (r->exec == Executor::fresh_capsule && start_activation(r, &payload)) return;
    if (r->exec == Executor::inline_handler && core_.current() == nullptr && inline_current_ == nullptr &&
        (!r->policed || policy_enter(r))) {
      run_inline(r, payload);
      return;
    }
  }
  if (!r->queue.push(payload)) return;  // out of memory: the timeout fires again after another period
  if (r->queue.size() == 1 || r->priority > r->pending_top) r->pending_top = r->priority;
  if (!r->disabled) kick(r);
}

// enqueue queues an activation under the registration's bound. At the bound a source that can
// wait is throttled (the activation is kept: its bytes were taken from the kernel already);
// one that cannot loses it, and the loss is reported in order once there is room.
bool Dispatcher::enqueue(Registration* r, Payload& payload) noexcept {
  const bool full = r->queue.size() >= r->queue_bound;
  if ((full && !is_socket_source(r->kind)) || !r->queue.push(payload)) {
    core_.metrics().count_lost(priority_of(r, payload));
    ++r->lost;
    ++lost_;
    ++r->lost_pending;
    release_payload(r, payload);
    if (r->queue.empty()) {
      // Out of memory with nothing queued: no later pop will report it, so say it now.
      log(LogLevel::error, "out of memory queueing an activation of %s; it is lost", event_name(r->kind, table_.id_of(r)).text);
      r->lost_pending = 0;
    }
    return false;
  }
  const Priority at = priority_of(r, payload);
  if (r->queue.size() == 1 || at > r->pending_top) r->pending_top = at;
  if (r->queue.size() >= r->queue_bound && is_socket_source(r->kind)) throttle(r);
  if (r->worker_active) boost_worker(r);
  return true;
}

// take_next pops the oldest queued payload; the room it leaves may resume a throttled source
// (at half the bound, so a source does not flap) and lets a pending loss report take its place.
Payload Dispatcher::take_next(Registration* r) noexcept {
  Payload payload = r->queue.pop();
  if (r->throttling && r->queue.size() <= r->queue_bound / 2) unthrottle(r);
  if (r->lost_pending != 0 && r->queue.size() < r->queue_bound) {
    Payload notice;
    notice.kind = PayloadKind::lost;
    notice.lost = r->lost_pending;
    if (r->queue.push(notice)) r->lost_pending = 0;
  }
  return payload;
}

// kick starts what can start of an enabled registration's queue, and leaves the rest to the
// dispatcher's next turn.
void Dispatcher::kick(Registration* r) noexcept {
  switch (r->exec) {
    case Executor::keepalive:
      if (r->worker_active || start_activation(r, nullptr)) return;
      break;
    case Executor::fresh_capsule:
      burst_held_ = false;
      while (!r->queue.empty() && start_activation(r, &r->queue.front())) (void)take_next(r);
      if (r->queue.empty()) return;
      if (burst_held_) return add_burst_held(r);
      break;
    case Executor::inline_handler:
      break;
  }
  add_pending(r);
}

void Dispatcher::add_burst_held(Registration* r) noexcept {
  if (r->on_pending_list) return;
  r->on_pending_list = true;
  bursts_[static_cast<unsigned>(priority_of(r, r->queue.front()))].push_back(r);
  ++burst_listed_;
  burst_progress_ = true;  // what held it was launched this turn: the next pass can go on
}

void Dispatcher::add_pending(Registration* r) noexcept {
  if (r->on_pending_list) return;
  r->on_pending_list = true;
  pending_.push_back(r);
}

// start_activation runs one activation with `payload` in a fresh capsule (moving it out only
// when a capsule was found), or (payload nullptr) starts the keepalive capsule that works
// through the queue.
bool Dispatcher::start_activation(Registration* r, Payload* payload, bool hold_bursts) noexcept {
  static_assert(sizeof(Activation) <= kFrameBytes && alignof(Activation) <= alignof(std::max_align_t));
  const Priority at = payload != nullptr ? priority_of(r, *payload) : std::max(r->priority, r->pending_top);
  if (payload != nullptr && hold_bursts && burst_full(at)) {
    start_held_ = burst_held_ = true;  // queued; the next turn launches it, once capsules have run
    return false;
  }
  if (r->policed && !policy_enter(r)) return false;  // max_active: it waits, queued
  auto capsule = core_.acquire_capsule();
  if (!capsule) {
    if (r->policed) policy_leave(r);
    return false;
  }
  if (payload != nullptr) {
    ++unstarted_[static_cast<unsigned>(at)];
    ++unstarted_total_;
    ++r->launched;  // still waiting (EventInfo::queued) until its capsule starts it
  }
  auto* activation = new ((*capsule)->frame) Activation(this, r, payload, at);
  activation->runner = &core_;
  ++r->running;
  if (payload == nullptr) {
    r->worker_active = true;
    r->worker = *capsule;
  }
  core_.count_task();
  core_.launch(*capsule, activation);
  return true;
}

// launch_past_bound starts the oldest queued activations of a fresh-capsule registration whose
// queue is at its bound, a capsule each (the pool grows if it must): burst_full only delays
// activations, it never makes one lost that a capsule could have run.
void Dispatcher::launch_past_bound(Registration* r) noexcept {
  while (r->queue.size() >= r->queue_bound && start_activation(r, &r->queue.front(), false)) (void)take_next(r);
}

// burst_full (burst_full_at past its inline check) reports whether a fresh-capsule activation
// at `at` should wait for the next turn: a turn's worth (run_budget) of activations at `at` or
// above is launched and not yet running, so all of them run before it would anyway. A more
// urgent one is never held back.
bool Dispatcher::burst_full_at(Priority at) const noexcept {
  std::uint32_t ahead = 0;
  for (unsigned level = static_cast<unsigned>(at); level < kPriorityLevels; ++level) ahead += unstarted_[level];
  return ahead >= burst_bound_;
}

// boost_worker raises a busy keepalive capsule to the priority of the most urgent activation
// queued for it (seed 3.2.2): it must serve those ahead of it first, so it runs at that
// priority until it has. The capsule lowers itself again as it takes activations.
void Dispatcher::boost_worker(Registration* r) noexcept {
  CapsuleControl* worker = r->worker;
  if (worker == nullptr) return;
  const Priority want = std::max(r->pending_top, r->priority);
  if (worker->owed < want) worker->owed = want;
  if (worker->priority < want) core_.reprioritize(worker, want);
}

void Dispatcher::run_inline(Registration* r, Payload& payload) noexcept {
  ++r->running;  // keeps the slot while the handler runs, even if it cancels itself
  inline_current_ = r;
  deliver(r, payload);
  inline_current_ = nullptr;
  activation_done(r);
}

bool Dispatcher::note_inline_block() noexcept {
  if (inline_current_ == nullptr) return false;
  ++inline_current_->blocked;
  ++inline_blocked_;
  return true;
}

void Dispatcher::deliver(Registration* r, Payload& p) noexcept {
  switch (p.kind) {
    case PayloadKind::activation:
      ++r->delivered;
      core_.metrics().count_delivery(priority_of(r, p));
      invoke_handler(r, p);
      break;
    case PayloadKind::lost:
      if (r->extras != nullptr && r->extras->on_lost) {
        try {
          r->extras->on_lost(Lost{p.lost});
        } catch (...) {
          log(LogLevel::warning, "on_lost of %s threw", event_name(r->kind, table_.id_of(r)).text);
        }
      } else {
        log(LogLevel::warning, "%u activations of %s were lost at its queue bound (%u)", p.lost,
            event_name(r->kind, table_.id_of(r)).text, r->queue_bound);
      }
      break;
    case PayloadKind::timeout:
      if (r->extras != nullptr && r->extras->on_timeout) {
        std::function<void()> handler = r->extras->on_timeout;  // it may replace itself
        try {
          handler();
        } catch (...) {
          log(LogLevel::warning, "the timeout handler of %s threw", event_name(r->kind, table_.id_of(r)).text);
        }
      }
      break;
    case PayloadKind::error:
      ++r->delivered;
      core_.metrics().count_delivery(priority_of(r, p));
      if (r->extras != nullptr && r->extras->on_error) {
        try {
          r->extras->on_error(std::error_code(p.error, std::generic_category()));
        } catch (...) {
          log(LogLevel::warning, "on_error of %s threw", event_name(r->kind, table_.id_of(r)).text);
        }
      }
      break;
  }
  release_payload(r, p);  // a socket the handler did not take (it threw first) must not leak
}

// invoke_handler runs the current handler. A replace_handler() while it runs retires this one:
// it is destroyed when its last running activation returns, never under it.
void Dispatcher::invoke_handler(Registration* r, Payload& p) noexcept {
  const HandlerOps* ops = r->ops;
  void* handler = r->handler;
  ++r->handler_users;
  try {
    ops->invoke(handler, p);
  } catch (const ForcedUnwind&) {
    // shutdown: the handler's capsule unwound; nothing to report
  } catch (const std::exception& e) {
    log(LogLevel::warning, "the handler of %s threw: %s", event_name(r->kind, table_.id_of(r)).text, e.what());
  } catch (...) {
    log(LogLevel::warning, "the handler of %s threw a non-std exception", event_name(r->kind, table_.id_of(r)).text);
  }
  if (handler == r->handler) {
    --r->handler_users;
    return;
  }
  RetiredHandler** link = &r->extras->retired;
  while ((*link)->handler != handler) link = &(*link)->next;
  RetiredHandler* old = *link;
  if (--old->users != 0) return;
  *link = old->next;
  old->ops->destroy(old->handler);
  if (old->heap) task_free(old->handler);
  delete old;
}

void Dispatcher::run_deferred() noexcept {
  if (!pending_.empty()) retry_pending();
  if (burst_listed_ != 0) retry_bursts();
}

void Dispatcher::retry_pending() noexcept {
  // A registration held back by its Policy (max_active) goes to the back of the list, so that
  // others (another group's) are not held up behind it; the first one to come round again ends
  // the pass: everything left is held.
  Registration* first_held = nullptr;
  while (!pending_.empty()) {
    Registration* r = pending_.head;
    if (r == first_held) return;
    bool held = false;
    start_held_ = false;
    if (!r->cancelled && !r->disabled) {
      switch (r->exec) {
        case Executor::keepalive:
          if (!r->worker_active && !r->queue.empty() && !start_activation(r, nullptr)) {
            if (!start_held_) return;
            held = true;
          }
          break;
        case Executor::fresh_capsule:
          // Moved out only when a capsule was found; else the oldest stays in front and the
          // next turn tries again.
          burst_held_ = false;
          while (!r->queue.empty()) {
            if (!start_activation(r, &r->queue.front())) {
              if (!start_held_) return;
              held = true;
              break;
            }
            (void)take_next(r);
          }
          if (held && burst_held_) {  // to its burst list: passes there stop at the first held
            (void)pending_.pop_front();
            r->on_pending_list = false;
            add_burst_held(r);
            continue;
          }
          break;
        case Executor::inline_handler:
          while (!r->cancelled && !r->disabled && !r->queue.empty()) {
            if (r->policed && !policy_enter(r)) {
              held = true;
              break;
            }
            Payload payload = take_next(r);
            run_inline(r, payload);
          }
          break;
      }
    }
    (void)pending_.pop_front();
    if (held) {
      if (first_held == nullptr) first_held = r;
      pending_.push_back(r);  // still on the list: to its back
      continue;
    }
    r->on_pending_list = false;
    table_.maybe_retire(r);
  }
}

void Dispatcher::retry_bursts() noexcept {
  burst_progress_ = false;
  for (unsigned level = kPriorityLevels; level-- > 0;) {
    while (Registration* r = bursts_[level].head) {
      bool stays = false;
      burst_held_ = start_held_ = false;
      if (!r->cancelled && !r->disabled) {
        while (!r->queue.empty() && start_activation(r, &r->queue.front())) {
          (void)take_next(r);
          burst_progress_ = true;
        }
        if (!r->queue.empty()) {
          // Full at this level is full at every lower one, and without a capsule nothing
          // starts: either way the rest waits for the next turn, in order.
          if (burst_held_ || !start_held_) return;
          stays = true;  // max_active: the pending list's passes take it from here
        }
      }
      (void)bursts_[level].pop_front();
      --burst_listed_;
      r->on_pending_list = false;
      if (stays) add_pending(r);
      else table_.maybe_retire(r);
    }
  }
}

inline void Dispatcher::activation_done(Registration* r) noexcept {
  if (r->policed) policy_leave(r);
  --r->running;
  // A keepalive capsule that stopped because of a cancel leaves its queue behind.
  if (r->cancelled) table_.discard_queue(r);
  table_.maybe_retire(r);
}

void Dispatcher::throttle(Registration* r) noexcept {
  Source* source = r->source;
  if (r->throttling || source == nullptr) return;
  r->throttling = true;
  ++throttles_;
  sources_.hold(source);
}

void Dispatcher::unthrottle(Registration* r) noexcept {
  if (!r->throttling) return;
  r->throttling = false;
  Source* source = r->source;
  if (source != nullptr) sources_.release(source);
}

// drop: see dispatcher.hpp. Not an activation of the registration's metrics: it never arrived.
void Dispatcher::drop(Registration* r) noexcept {
  ++r->activated;
  ++r->lost;
  ++lost_;
}

void Dispatcher::on_timeout(CoreTimer* timer) noexcept {
  auto* r = static_cast<Registration*>(timer->owner);
  Dispatcher& dispatcher = event_table(Core::current_core())->dispatcher();
  RegistrationExtras& x = *r->extras;
  if (r->cancelled || x.timeout <= Duration::zero()) return;
  const TimePoint now = Clock::now();
  if (now - x.last_activity >= x.timeout) {
    x.last_activity = now;  // silent for another period: it fires again
    Payload notice;
    notice.kind = PayloadKind::timeout;
    dispatcher.post_notice(r, notice);
  }
  dispatcher.core_.wheel().arm(x.timeout_timer.node, x.last_activity + x.timeout);
}

}  // namespace aem::detail
