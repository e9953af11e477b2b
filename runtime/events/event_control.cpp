// event_control.cpp — aem::ctl, trigger, cancel and registration_reserve: the checks, the
// routing of another core's id to that core, and the control operations on the table.
#include "runtime/events/runtime_events.hpp"
#include "runtime/sched/core.hpp"
#include "runtime/events/event_table.hpp"
#include "runtime/events/group_state.hpp"
#include "runtime/sched/runtime_impl.hpp"
#include "alloc/task_memory.hpp"

#include <aem/cross_core.hpp>
#include <aem/event.hpp>
#include <aem/timer.hpp>

#include <algorithm>
#include <new>

namespace aem {
namespace detail {
namespace {

// on_owner runs `op(table)` on the core that owns `id`: here, or on its core while the calling
// capsule waits. The table's errors are all aem::errc, so the value crosses alone. Result<void>
// throughout: a success must not cost a std::error_code (trigger is a hot path).
template <typename Op>
Result<void> on_owner(EventId id, Op&& op) {
  bool in_capsule = false;
  Core* core = Core::api_caller(in_capsule);
  if (core == nullptr) return errc::not_in_capsule;
  RuntimeImpl& runtime = core->runtime();
  if (!id.valid() || id.tag() != runtime.tag() || id.core() >= runtime.core_count()) return errc::foreign_event_id;
  if (id.core() == core->index()) return op(*event_table(core));
  if (!in_capsule) {
    (void)event_table(core)->note_inline_block();  // submit would suspend the dispatcher
    return errc::inline_handler_blocked;
  }
  auto verdict = submit(id.core(), [&op] { return op(*event_table(Core::current_core())).error().value(); });
  if (!verdict) return verdict.error();
  if (*verdict != 0) return std::error_code(*verdict, error_category());
  return {};
}

}  // namespace

// ---- the operations on the owning core's table ------------------------------------------

Result<void> EventTable::enable(EventId id) noexcept {
  Result<Registration*> found = lookup(id);
  if (!found) return found.error();
  Registration* r = *found;
  if (!r->disabled) return {};
  r->disabled = false;
  if (!r->queue.empty()) dispatcher_.kick(r);
  return {};
}

Result<void> EventTable::disable(EventId id) noexcept {
  Result<Registration*> found = lookup(id);
  if (!found) return found.error();
  (*found)->disabled = true;
  return {};
}

Result<void> EventTable::set_priority(EventId id, Priority priority) noexcept {
  Result<Registration*> found = lookup(id);
  if (!found) return found.error();
  if (!is_valid(priority)) return make_error_code(errc::invalid_argument);
  Registration* r = *found;
  r->priority = priority;
  // Queued activations take the registration's priority when they start; a running keepalive
  // capsule takes it now (or the boost it still owes to what is queued).
  if (r->worker != nullptr) {
    r->worker->base_priority = priority;
    r->worker->owed = r->queue.empty() ? Priority::idle : std::max(priority, r->pending_top);
    core_.restore_priority(*r->worker);
  }
  return {};
}

Result<void> EventTable::set_filter(EventId id, EventFilter& filter) noexcept {
  Result<Registration*> found = lookup(id);
  if (!found) return found.error();
  Registration* r = *found;
  if (!filter && r->extras == nullptr) return {};
  if (extras(r) == nullptr) return make_error_code(errc::out_of_memory);
  r->extras->filter = std::move(filter);
  return {};
}

Result<void> EventTable::set_timeout(EventId id, Duration timeout, std::function<void()>& handler) noexcept {
  Result<Registration*> found = lookup(id);
  if (!found) return found.error();
  Registration* r = *found;
  if (timeout <= Duration::zero() && r->extras == nullptr) return {};
  RegistrationExtras* x = extras(r);
  if (x == nullptr) return make_error_code(errc::out_of_memory);
  if (x->timeout_timer.node.armed()) core_.wheel().cancel(x->timeout_timer.node);
  if (timeout <= Duration::zero()) {
    x->timeout = Duration::zero();
    x->on_timeout = nullptr;
    return {};
  }
  x->timeout = timeout;
  x->on_timeout = std::move(handler);
  x->last_activity = Clock::now();
  core_.wheel().arm(x->timeout_timer.node, x->last_activity + timeout);
  return {};
}

Result<void> EventTable::replace_handler(EventId id, const Replacement& replacement) noexcept {
  Result<Registration*> found = lookup(id);
  if (!found) return found.error();
  Registration* r = *found;
  const HandlerOps* ops = replacement.ops[static_cast<std::size_t>(r->ops->signature)];
  if (ops == nullptr) return make_error_code(errc::invalid_argument);
  const bool busy = r->handler_users != 0;
  if (busy && extras(r) == nullptr) return make_error_code(errc::out_of_memory);
  // The slot's own storage is free unless the handler being replaced, or an older one still
  // running, lives there.
  bool storage_free = !busy || r->handler != r->inline_storage;
  if (r->extras != nullptr) {
    for (RetiredHandler* old = r->extras->retired; old != nullptr; old = old->next) {
      if (old->handler == r->inline_storage) storage_free = false;
    }
  }
  const bool fits = replacement.size <= Registration::kInlineBytes && replacement.align <= alignof(std::max_align_t);
  RetiredHandler* retired = nullptr;
  void* storage = nullptr;
  try {
    if (busy) retired = new RetiredHandler{r->ops, r->handler, r->heap_handler, r->handler_users, nullptr};
    storage = fits && storage_free ? static_cast<void*>(r->inline_storage) : task_allocate(replacement.size, replacement.align);
  } catch (const std::bad_alloc&) {
    delete retired;
    return make_error_code(errc::out_of_memory);
  }
  const bool heap = storage != r->inline_storage;
  if (busy) {
    retired->next = r->extras->retired;
    r->extras->retired = retired;
  } else {
    r->ops->destroy(r->handler);
    if (r->heap_handler) task_free(r->handler);
  }
  // From here the registration has no handler until the new one is in: nothing runs between
  // (this core runs nothing else meanwhile), so no activation sees the gap.
  try {
    replacement.move_into(storage, replacement.source);
  } catch (...) {
    // The old handler is gone (or retired): keep the registration from calling anything.
    if (heap) task_free(storage);
    r->handler = nullptr;
    r->ops = nullptr;
    cancel_registration(r);
    return make_error_code(errc::cancelled);
  }
  r->ops = ops;
  r->handler = storage;
  r->heap_handler = heap;
  r->handler_users = 0;
  return {};
}

Result<EventInfo> EventTable::info(EventId id) const noexcept {
  Result<Registration*> found = lookup(id);
  if (!found) return found.error();
  const Registration* r = *found;
  EventInfo info;
  info.source = r->kind;
  info.priority = r->priority;
  info.exec = r->exec;
  info.core = core_.index();
  info.queue_bound = r->queue_bound;
  info.running = r->running - r->launched;  // started: not the capsules still waiting to start theirs
  info.sharing = r->source != nullptr ? r->source->attached : 1;
  info.activated = r->activated;
  info.delivered = r->delivered;
  // Waiting: the activations in its queue (not the notices there: a loss report is counted in
  // `lost`, a timeout is no activation) and those in capsules that have not started yet, so that
  // the counts add up to `activated` in any snapshot, one taken by a running handler included.
  r->queue.for_each([&](const Payload& p) {
    if (p.kind == PayloadKind::activation || p.kind == PayloadKind::error) ++info.queued;
  });
  info.queued += r->launched;
  info.filtered = r->filtered;
  info.lost = r->lost;
  info.blocked = r->blocked;
  info.throttled = r->throttling;
  if (over(r)) info.state = EventState::ended;
  else if (r->disabled) info.state = EventState::disabled;
  else info.state = EventState::active;
  return info;
}

// Defined `inline` (trigger_event below is its only caller): a member defined out of its class
// in a -fPIC library is otherwise always a call, which every trigger would pay.
inline Result<void> EventTable::trigger(EventId id, EventData& data, std::uint8_t priority) noexcept {
  Result<Registration*> found = lookup(id);
  if (!found) return found.error();
  Registration* r = *found;
  if (r->kind != SourceType::user) return make_error_code(errc::invalid_argument);
  Payload payload;
  payload.data = std::move(data);
  payload.priority = priority;
  dispatcher_.activate(r, payload);
  return {};
}

// ---- the public half ----------------------------------------------------------------------

Result<void> registration_reserve(std::size_t size, std::size_t align, RegistrationOptions& options,
                                  RegistrationSlot& slot) noexcept {
  bool in_capsule = false;
  Core* core = Core::api_caller(in_capsule);
  if (core == nullptr) return make_error_code(errc::not_in_capsule);
  if (!is_valid(options.priority) || options.queue_bound == 0 || options.exec > Executor::inline_handler) {
    return make_error_code(errc::invalid_argument);
  }
  if (core->runtime().stopping()) return make_error_code(errc::shutting_down);
  // Policy: only a registration in an event group, or in a runtime with limits, is looked at.
  GroupState* group = options.internal ? nullptr : current_group(core);
  bool policed = false;
  if (!options.internal && (group != nullptr || runtime_limits(core->runtime()).any)) [[unlikely]] {
    if (Result<void> admitted = admit_registration(core, group, options, policed); !admitted) return admitted.error();
  }
  auto registration = event_table(core)->reserve(size, align, options);
  if (!registration) {
    if (policed) release_registration(core->runtime(), group);
    return registration.error();
  }
  if (policed) [[unlikely]] {
    (*registration)->group = group;
    (*registration)->policed = true;
  }
  slot.registration = *registration;
  slot.storage = (*registration)->handler;
  return {};
}

void registration_unreserve(const RegistrationSlot& slot) noexcept {
  event_table(Core::current_core())->unreserve(static_cast<Registration*>(slot.registration));
}

Result<EventId> arm_user(const RegistrationSlot& slot, const HandlerOps* ops) noexcept {
  return event_table(Core::current_core())->arm_user(static_cast<Registration*>(slot.registration), ops);
}

Result<void> ctl_simple(EventId id, CtlOp op, Priority priority) {
  return on_owner(id, [id, op, priority](EventTable& table) -> Result<void> {
    switch (op) {
      case CtlOp::enable: return table.enable(id);
      case CtlOp::disable: return table.disable(id);
      case CtlOp::set_priority: return table.set_priority(id, priority);
      case CtlOp::cancel: return table.cancel(id);
    }
    return errc::invalid_argument;
  });
}

Result<void> ctl_set_filter(EventId id, EventFilter& filter) {
  return on_owner(id, [&](EventTable& table) { return table.set_filter(id, filter); });
}

Result<void> ctl_set_timeout(EventId id, Duration timeout, std::function<void()>& handler) {
  return on_owner(id, [&](EventTable& table) { return table.set_timeout(id, timeout, handler); });
}

Result<void> ctl_replace_handler(EventId id, const Replacement& replacement) {
  return on_owner(id, [&](EventTable& table) { return table.replace_handler(id, replacement); });
}

Result<EventInfo> ctl_info(EventId id) {
  EventInfo out;
  Result<void> done = on_owner(id, [&](EventTable& table) -> Result<void> {
    Result<EventInfo> info = table.info(id);
    if (!info) return info.error();
    out = *info;
    return {};
  });
  if (!done) return done.error();
  return out;
}

Result<void> trigger_event(EventId id, EventData& data, std::uint8_t priority) {
  return on_owner(id, [&](EventTable& table) { return table.trigger(id, data, priority); });
}

}  // namespace detail

Result<void> cancel(EventId id) {
  return detail::on_owner(id, [id](detail::EventTable& table) { return table.cancel(id); });
}

Result<void> trigger(EventId id, EventData data) { return detail::trigger_event(id, data, detail::kOwnPriority); }

Result<void> trigger(EventId id, EventData data, Priority priority) {
  if (!is_valid(priority)) return make_error_code(errc::invalid_argument);
  return detail::trigger_event(id, data, static_cast<std::uint8_t>(priority));
}

namespace this_core {

EventStats event_stats() noexcept {
  detail::Core* core = detail::Core::current_core();
  return core != nullptr ? event_table(core)->event_stats() : EventStats{};
}

}  // namespace this_core
}  // namespace aem
