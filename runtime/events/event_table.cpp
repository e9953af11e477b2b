// event_table.cpp — the slots of a core's event table: reserving, timers, triggered events and
// arming socket registrations (their sources are SocketSources'), lookup by EventId, cancel,
// and retiring a slot once nothing can touch it any more.
#include "runtime/events/event_table.hpp"

#include "runtime/sched/core.hpp"
#include "runtime/sched/runtime_impl.hpp"
#include "alloc/task_memory.hpp"
#include "runtime/events/sources/topic_registry.hpp"

#include <cstdio>
#include <new>
#include <unistd.h>

namespace aem::detail {
namespace {

constexpr std::uint32_t kGenerationMask = 0xffffffu;

}  // namespace

const char* source_name(SourceType kind) noexcept {
  switch (kind) {
    case SourceType::timer: return "timer";
    case SourceType::accept: return "accept";
    case SourceType::data: return "data";
    case SourceType::close: return "close";
    case SourceType::state: return "state";
    case SourceType::user: return "event";
    case SourceType::topic: return "topic";
    case SourceType::signal: return "signal";
    case SourceType::error: return "error";
  }
  return "event";
}

EventName event_name(SourceType kind, EventId id) noexcept {
  EventName name;
  std::snprintf(name.text, sizeof name.text, "%s %u/%u/%u (core/slot/generation)", source_name(kind), id.core(), id.slot(),
                id.generation());
  return name;
}

void close_accepted(Payload& p) noexcept { ::close(std::exchange(p.value, -1)); }

EventTable::EventTable(Core& core, std::uint8_t runtime_tag) noexcept
    : core_(core),
      tag_(runtime_tag),
      core_index_(core.index()),
      dispatcher_(*this, sources_, core),
      sources_(*this, dispatcher_, core) {}

EventTable::~EventTable() {
  for (Registration* chunk : chunks_) {
    for (std::uint32_t i = 0; i < kChunkSize; ++i) {
      Registration& r = chunk[i];
      if (r.in_use) {
        discard_queue(&r);
        destroy_handlers(&r);
        if (r.policed) dispatcher_.policy_retire(&r);
      }
      r.~Registration();
    }
    ::operator delete(chunk, std::align_val_t{alignof(Registration)});
  }
  // After the registrations: the readers' handlers point at their ports.
  free_signal_port(signal_port_.load(std::memory_order_acquire));
  free_error_port(error_port_.load(std::memory_order_acquire));
}

bool EventTable::grow() noexcept {
  const auto base = static_cast<std::uint32_t>(chunks_.size()) << kChunkShift;
  if (base >= kMaxSlots) return false;
  auto* chunk = static_cast<Registration*>(
      ::operator new(sizeof(Registration) * kChunkSize, std::align_val_t{alignof(Registration)}, std::nothrow));
  if (chunk == nullptr) return false;
  try {
    chunks_.push_back(chunk);
  } catch (...) {
    ::operator delete(chunk, std::align_val_t{alignof(Registration)});
    return false;
  }
  // Slot 0 of chunk 0 is never handed out, so no valid EventId is all zeros in its low bits.
  for (std::uint32_t i = kChunkSize; i-- > 0;) {
    auto* r = new (&chunk[i]) Registration();
    r->index = base + i;
    r->timer.owner = r;
    if (base + i == 0) continue;
    r->next_free = free_;
    free_ = r;
  }
  return true;
}

RegistrationExtras* EventTable::extras(Registration* r) noexcept {
  if (r->extras == nullptr) {
    r->extras = new (std::nothrow) RegistrationExtras();
    if (r->extras != nullptr) {
      r->extras->timeout_timer.owner = r;
      r->extras->timeout_timer.fire = &Dispatcher::on_timeout;
    }
  }
  return r->extras;
}

Result<Registration*> EventTable::reserve(std::size_t size, std::size_t align, RegistrationOptions& options) noexcept {
  if (free_ == nullptr && !grow()) return make_error_code(errc::resource_limit);
  Registration* r = free_;
  if (options.on_lost || options.on_error) {
    if (extras(r) == nullptr) return make_error_code(errc::out_of_memory);
    r->extras->on_lost = std::move(options.on_lost);
    r->extras->on_error = std::move(options.on_error);
  }
  if (size <= Registration::kInlineBytes && align <= alignof(std::max_align_t)) {
    r->handler = r->inline_storage;
    r->heap_handler = false;
  } else {
    try {
      r->handler = task_allocate(size, align);
    } catch (const std::bad_alloc&) {
      delete std::exchange(r->extras, nullptr);
      return make_error_code(errc::out_of_memory);
    }
    r->heap_handler = true;
  }
  free_ = r->next_free;
  r->next_free = nullptr;
  r->in_use = true;
  r->cancelled = r->worker_active = r->disabled = r->throttling = r->detached = false;
  r->running = r->handler_users = r->lost_pending = r->blocked = r->launched = 0;
  r->activated = r->delivered = r->filtered = r->lost = 0;
  r->priority = options.priority;
  r->exec = options.exec;
  r->queue_bound = options.queue_bound;
  r->site = options.site;
  r->ops = nullptr;
  r->kind = SourceType::timer;
  r->source = nullptr;
  r->worker = nullptr;
  r->period = Duration::zero();
  ++in_use_;
  return r;
}

void EventTable::unreserve(Registration* r) noexcept {
  r->ops = nullptr;
  retire(r);
}

EventId EventTable::arm_user(Registration* r, const HandlerOps* ops) noexcept {
  r->ops = ops;
  r->kind = SourceType::user;
  return id_of(r);
}

Result<EventId> EventTable::arm_source(Registration* r, const HandlerOps* ops, const SourceSpec& spec) noexcept {
  r->ops = ops;  // from here on retire() destroys the handler
  r->kind = spec.kind;
  if (spec.fd < 0 || !is_socket_source(spec.kind)) {
    retire(r);
    return make_error_code(errc::invalid_argument);
  }
  if (Result<void> attached = sources_.attach(r, spec); !attached) {
    retire(r);
    return attached.error();
  }
  return id_of(r);
}

void EventTable::on_timer(CoreTimer* timer) noexcept {
  auto* r = static_cast<Registration*>(timer->owner);
  EventTable& table = *event_table(Core::current_core());  // timers fire on their own core
  if (r->period > Duration::zero()) {
    // Re-arm from the previous deadline, not from now: periods do not drift, none is skipped.
    table.core_.wheel().arm(r->timer.node, r->timer.node.deadline + r->period);
  }
  Payload payload;
  table.dispatcher_.activate(r, payload);
  table.maybe_retire(r);
}

void EventTable::discard_queue(Registration* r) noexcept {
  while (!r->queue.empty()) {
    Payload p = r->queue.pop();
    release_payload(r, p);
  }
}

// destroy_handlers destroys the current handler and any replaced one still waiting.
inline void EventTable::destroy_handlers(Registration* r) noexcept {
  if (r->ops != nullptr && r->handler != nullptr) r->ops->destroy(r->handler);
  if (r->heap_handler && r->handler != nullptr) task_free(r->handler);
  r->handler = nullptr;
  r->heap_handler = false;
  r->ops = nullptr;
  if (RegistrationExtras* x = std::exchange(r->extras, nullptr)) {
    if (x->timeout_timer.node.armed()) core_.wheel().cancel(x->timeout_timer.node);
    for (RetiredHandler* old = x->retired; old != nullptr;) {
      RetiredHandler* next = old->next;
      old->ops->destroy(old->handler);
      if (old->heap) task_free(old->handler);
      delete old;
      old = next;
    }
    delete x;
  }
}

void EventTable::retire(Registration* r) noexcept {
  if (r->source != nullptr) {
    Source* source = r->source;
    sources_.detach(r);
    sources_.sweep(source);
    return;  // sweep() retires it, unlinked
  }
  if (r->timer.node.armed()) core_.wheel().cancel(r->timer.node);
  destroy_handlers(r);
  if (r->policed) [[unlikely]] dispatcher_.policy_retire(r);
  r->in_use = false;
  r->cancelled = false;
  r->generation = (r->generation + 1) & kGenerationMask;
  if (r->generation == 0) r->generation = 1;
  r->next_free = free_;
  free_ = r;
  --in_use_;
}

void EventTable::cancel_registration(Registration* r) noexcept {
  r->cancelled = true;
  if (r->kind == SourceType::topic) topic_cancelled(core_.runtime(), id_of(r));  // publish stops counting it
  discard_queue(r);
  if (r->timer.node.armed()) core_.wheel().cancel(r->timer.node);
  if (r->extras != nullptr && r->extras->timeout_timer.node.armed()) core_.wheel().cancel(r->extras->timeout_timer.node);
  if (r->source != nullptr) sources_.detach(r);
  maybe_retire(r);
}

Result<void> EventTable::cancel(EventId id) noexcept {
  Result<Registration*> found = lookup(id);
  if (!found) return found.error();
  Registration* r = *found;
  // A timer or triggered event at rest (the common case: nothing queued, running or attached):
  // no handler can see the slot, so it is retired at once. Other kinds have more to undo.
  if ((r->kind == SourceType::timer || r->kind == SourceType::user) && r->extras == nullptr && r->running == 0 &&
      !r->on_pending_list && r->queue.empty()) {
    retire(r);
    return {};
  }
  cancel_registration(r);
  return {};
}

void EventTable::cancel_all() noexcept {
  for (Registration* chunk : chunks_) {
    for (std::uint32_t i = 0; i < kChunkSize; ++i) {
      Registration& r = chunk[i];
      if (r.in_use && !r.cancelled && r.ops != nullptr) cancel_registration(&r);
    }
  }
}

std::size_t EventTable::cancel_group(const GroupState* group) noexcept {
  std::size_t cancelled = 0;
  for (Registration* chunk : chunks_) {
    for (std::uint32_t i = 0; i < kChunkSize; ++i) {
      Registration& r = chunk[i];
      if (r.in_use && !r.cancelled && r.ops != nullptr && r.group == group) {
        cancel_registration(&r);
        ++cancelled;
      }
    }
  }
  return cancelled;
}

this_core::EventStats EventTable::event_stats() const noexcept {
  this_core::EventStats stats;
  stats.inline_blocked = dispatcher_.inline_blocked();
  stats.throttles = dispatcher_.throttles();
  stats.lost = dispatcher_.lost();
  stats.registrations = in_use_;
  return stats;
}

}  // namespace aem::detail
