#include "runtime/event_table.hpp"

#include "runtime/core.hpp"
#include "runtime/runtime_impl.hpp"
#include "runtime/task_memory.hpp"

#include <cstdio>
#include <exception>
#include <new>
#include <unistd.h>

namespace aem::detail {
namespace {

constexpr std::uint32_t kChunkShift = 12;
constexpr std::uint32_t kChunkSize = 1u << kChunkShift;
constexpr std::uint32_t kGenerationMask = 0xffffffu;

const char* source_name(SourceKind kind) noexcept {
  switch (kind) {
    case SourceKind::timer: return "timer";
    case SourceKind::accept: return "accept";
    case SourceKind::data: return "data";
    case SourceKind::hangup: return "close";
    case SourceKind::state: return "state";
  }
  return "event";
}

// release_payload gives up what an activation's payload owns beyond its EventData: a socket
// accepted for a handler that never took it (it threw, or the activation was dropped).
void release_payload(const Registration* r, Payload& p) noexcept {
  if (r->kind == SourceKind::accept && p.value >= 0) ::close(std::exchange(p.value, -1));
}

}  // namespace

// Activation is the task that runs a registration's handler: one activation (fresh_capsule),
// or every queued one in turn (keepalive). It lives in the frame of its capsule and is
// released from birth (nobody joins it).
struct EventTable::Activation final : TaskState {
  EventTable* table;
  Registration* registration;
  Payload payload;
  bool keepalive;

  Activation(EventTable* t, Registration* r, Payload* p) noexcept
      : table(t), registration(r), keepalive(p == nullptr) {
    if (p != nullptr) payload = std::move(*p);
    run = &run_impl;
    dispose = &dispose_impl;
    home = TaskHome::capsule_frame;
    priority = r->priority;
    flags.store(kReleased, std::memory_order_relaxed);
  }
  static void run_impl(TaskState* state) noexcept {
    auto* self = static_cast<Activation*>(state);
    Registration* r = self->registration;
    if (self->keepalive) {
      // One at a time, in order, until nothing is queued: then the capsule goes back to the
      // pool. No suspension between the last empty() and the flag, so no activation is missed.
      while (!r->cancelled && !r->queue.empty()) {
        Payload payload = r->queue.pop();
        self->invoke(r, payload);
      }
      r->worker_active = false;
    } else if (!r->cancelled) {
      // Cancelled after this activation was queued but before it started: cancel() promises
      // that no activation starts once it has returned.
      self->invoke(r, self->payload);
    }
    self->table->activation_done(r);
  }
  void invoke(Registration* r, Payload& p) noexcept {
    try {
      r->ops->invoke(r->handler, p);
    } catch (const ForcedUnwind&) {
      // shutdown: the handler's capsule unwound; nothing to report
    } catch (const std::exception& e) {
      std::fprintf(stderr, "aem: %s handler (event %llu) threw: %s\n", source_name(r->kind),
                   static_cast<unsigned long long>(table->id_of(r).value()), e.what());
    } catch (...) {
      std::fprintf(stderr, "aem: %s handler (event %llu) threw a non-std exception\n", source_name(r->kind),
                   static_cast<unsigned long long>(table->id_of(r).value()));
    }
    release_payload(r, p);  // a socket the handler did not take (it threw first) must not leak
  }
  static void dispose_impl(TaskState* state) noexcept { static_cast<Activation*>(state)->~Activation(); }
};

EventTable::EventTable(Core& core, std::uint8_t runtime_tag) noexcept : core_(core), tag_(runtime_tag) {}

EventTable::~EventTable() {
  for (Registration* chunk : chunks_) {
    for (std::uint32_t i = 0; i < kChunkSize; ++i) {
      Registration& r = chunk[i];
      if (r.in_use) discard_queue(&r);
      if (r.in_use && r.handler != nullptr && r.ops != nullptr) {
        r.ops->destroy(r.handler);
        if (r.heap_handler) task_free(r.handler);
      }
      r.~Registration();
    }
    ::operator delete(chunk, std::align_val_t{alignof(Registration)});
  }
  if (buffer_ring_ && buffer_ring_registered_) core_.backend().unregister_buffer_ring(*buffer_ring_);
}

EventId EventTable::id_of(const Registration* r) const noexcept {
  return EventId(tag_, core_.index(), r->generation, r->index);
}

Registration* EventTable::slot(std::uint32_t index) noexcept {
  const std::uint32_t chunk = index >> kChunkShift;
  if (chunk >= chunks_.size()) return nullptr;
  return &chunks_[chunk][index & (kChunkSize - 1)];
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
    r->op.owner = r;
    r->op.completion.complete = &on_source_complete;
    if (base + i == 0) continue;
    r->next_free = free_;
    free_ = r;
  }
  return true;
}

Result<Registration*> EventTable::reserve(std::size_t size, std::size_t align, Priority priority) noexcept {
  if (free_ == nullptr && !grow()) return make_error_code(errc::resource_limit);
  Registration* r = free_;
  if (size <= Registration::kInlineBytes && align <= alignof(std::max_align_t)) {
    r->handler = r->inline_storage;
    r->heap_handler = false;
  } else {
    try {
      r->handler = task_allocate(size, align);
    } catch (const std::bad_alloc&) {
      return make_error_code(errc::out_of_memory);
    }
    r->heap_handler = true;
  }
  free_ = r->next_free;
  r->next_free = nullptr;
  r->in_use = true;
  r->cancelled = r->ended = r->worker_active = r->backing_off = false;
  r->running = 0;
  r->lost = 0;
  r->priority = priority;
  r->ops = nullptr;
  r->kind = SourceKind::timer;
  r->exec = Executor::fresh_capsule;
  r->fd = -1;
  r->period = Duration::zero();
  ++in_use_;
  return r;
}

void EventTable::unreserve(Registration* r) noexcept {
  r->ops = nullptr;
  retire(r);
}

EventId EventTable::arm_timer(Registration* r, const HandlerOps* ops, TimePoint first, Duration period) noexcept {
  r->ops = ops;
  r->period = period;
  r->timer.fire = &on_timer;
  core_.wheel().arm(r->timer.node, first);
  return id_of(r);
}

void EventTable::on_timer(CoreTimer* timer) noexcept {
  auto* r = static_cast<Registration*>(timer->owner);
  EventTable& table = *Core::current_core()->events();  // timers fire on their own core
  if (r->period > Duration::zero()) {
    // Re-arm from the previous deadline, not from now: periods do not drift, none is skipped.
    table.core_.wheel().arm(r->timer.node, r->timer.node.deadline + r->period);
  }
  Payload payload;
  table.activate(r, payload);
  table.maybe_retire(r);
}

void EventTable::activate(Registration* r, Payload& payload) noexcept {
  if (r->exec == Executor::fresh_capsule) {
    if (r->queue.empty() && start_activation(r, &payload)) return;
  }
  // Queued: for the keepalive capsule, or until the pool has a capsule again. Not lost,
  // unless even the queue cannot grow (then it is counted).
  if (!r->queue.push(payload)) {
    ++r->lost;
    release_payload(r, payload);
    std::fprintf(stderr, "aem: out of memory queueing an activation of event %llu; it is lost\n",
                 static_cast<unsigned long long>(id_of(r).value()));
    return;
  }
  if (r->exec == Executor::keepalive && r->worker_active) return;
  if (r->exec == Executor::keepalive && start_activation(r, nullptr)) return;
  add_pending(r);
}

void EventTable::add_pending(Registration* r) noexcept {
  if (r->on_pending_list) return;
  r->on_pending_list = true;
  r->next_pending = nullptr;
  if (pending_tail_ != nullptr) pending_tail_->next_pending = r;
  else pending_head_ = r;
  pending_tail_ = r;
}

// start_activation runs one activation with `payload` in a fresh capsule, or (payload nullptr)
// starts the keepalive capsule that works through the queue.
bool EventTable::start_activation(Registration* r, Payload* payload) noexcept {
  static_assert(sizeof(Activation) <= kFrameBytes && alignof(Activation) <= alignof(std::max_align_t));
  auto capsule = core_.acquire_capsule();
  if (!capsule) return false;
  auto* activation = new ((*capsule)->frame) Activation(this, r, payload);
  activation->runner = &core_;
  ++r->running;
  if (payload == nullptr) r->worker_active = true;
  core_.count_task();
  core_.launch(*capsule, activation);
  return true;
}

void EventTable::run_deferred() noexcept {
  if (pending_head_ != nullptr) retry_pending();
  if (rearm_head_ != nullptr) rearm_starved();
}

void EventTable::retry_pending() noexcept {
  while (pending_head_ != nullptr) {
    Registration* r = pending_head_;
    if (!r->cancelled) {
      if (r->exec == Executor::keepalive) {
        if (!r->worker_active && !r->queue.empty() && !start_activation(r, nullptr)) return;
      } else {
        // start_activation moves the payload out only when it found a capsule; else the
        // oldest stays in front and the next turn tries again.
        while (!r->queue.empty()) {
          if (!start_activation(r, &r->queue.front())) return;
          (void)r->queue.pop();
        }
      }
    }
    pending_head_ = r->next_pending;
    if (pending_head_ == nullptr) pending_tail_ = nullptr;
    r->on_pending_list = false;
    maybe_retire(r);
  }
}

void EventTable::activation_done(Registration* r) noexcept {
  --r->running;
  // A keepalive capsule that stopped because of a cancel leaves its queue behind.
  if (r->cancelled) discard_queue(r);
  maybe_retire(r);
}

// maybe_retire frees the slot once nothing can touch it any more: no activation runs or waits,
// and the source is over (a fired one-shot timer, a cancelled registration, an ended socket
// source with no operation or back-off outstanding).
void EventTable::maybe_retire(Registration* r) noexcept {
  if (!r->in_use || r->running != 0 || r->on_pending_list || !r->queue.empty()) return;
  if (r->kind == SourceKind::timer) {
    if (r->cancelled || !r->timer.node.armed()) retire(r);
    return;
  }
  if ((r->cancelled || r->ended) && !r->op_in_flight && !r->timer.node.armed() && !r->on_rearm_list) retire(r);
}

void EventTable::discard_queue(Registration* r) noexcept {
  while (!r->queue.empty()) {
    Payload p = r->queue.pop();
    release_payload(r, p);
  }
}

void EventTable::retire(Registration* r) noexcept {
  if (r->ops != nullptr) r->ops->destroy(r->handler);
  if (r->heap_handler) task_free(r->handler);
  r->handler = nullptr;
  r->heap_handler = false;
  r->ops = nullptr;
  r->in_use = false;
  r->cancelled = false;
  r->generation = (r->generation + 1) & kGenerationMask;
  if (r->generation == 0) r->generation = 1;
  r->next_free = free_;
  free_ = r;
  --in_use_;
}

Result<void> EventTable::cancel(EventId id) noexcept {
  Registration* r = slot(id.slot());
  if (r == nullptr || !r->in_use || r->cancelled || r->generation != id.generation() || r->ops == nullptr) {
    return make_error_code(errc::stale_event_id);
  }
  if (r->kind == SourceKind::timer) {
    // A one-shot timer that fired and whose handler still runs is over too.
    if (r->period == Duration::zero() && !r->timer.node.armed() && r->queue.empty()) {
      return make_error_code(errc::stale_event_id);
    }
  } else if (r->ended && r->queue.empty()) {
    return make_error_code(errc::stale_event_id);
  }
  r->cancelled = true;
  discard_queue(r);
  if (r->timer.node.armed()) core_.wheel().cancel(r->timer.node);
  if (r->kind != SourceKind::timer) stop_source(r);
  maybe_retire(r);
  return {};
}

void EventTable::cancel_all() noexcept {
  for (Registration* chunk : chunks_) {
    for (std::uint32_t i = 0; i < kChunkSize; ++i) {
      Registration& r = chunk[i];
      if (r.in_use && !r.cancelled && r.ops != nullptr) (void)cancel(id_of(&r));
    }
  }
}

}  // namespace aem::detail
