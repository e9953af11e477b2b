#include "runtime/event_table.hpp"

#include "runtime/core.hpp"
#include "runtime/runtime_impl.hpp"
#include "runtime/task_memory.hpp"

#include <cstdio>
#include <exception>
#include <new>

namespace aem::detail {
namespace {

constexpr std::uint32_t kChunkShift = 12;
constexpr std::uint32_t kChunkSize = 1u << kChunkShift;
constexpr std::uint32_t kGenerationMask = 0xffffffu;

}  // namespace

// Activation is the task of one timer expiry: it lives in the frame of the capsule that runs
// the handler, and is released from birth (nobody joins it).
struct EventTable::Activation final : TaskState {
  EventTable* table;
  Registration* registration;

  Activation(EventTable* t, Registration* r) noexcept : table(t), registration(r) {
    run = &run_impl;
    dispose = &dispose_impl;
    home = TaskHome::capsule_frame;
    priority = r->priority;
    flags.store(kReleased, std::memory_order_relaxed);
  }
  static void run_impl(TaskState* state) noexcept {
    auto* self = static_cast<Activation*>(state);
    Registration* r = self->registration;
    try {
      // Cancelled after this activation was queued but before it started: cancel() promises
      // that no activation starts once it has returned.
      if (!r->cancelled) r->ops->invoke(r->handler);
    } catch (const ForcedUnwind&) {
      // shutdown: the handler's capsule unwound; nothing to report
    } catch (const std::exception& e) {
      std::fprintf(stderr, "aem: timer handler (event %llu) threw: %s\n",
                   static_cast<unsigned long long>(self->table->id_of(r).value()), e.what());
    } catch (...) {
      std::fprintf(stderr, "aem: timer handler (event %llu) threw a non-std exception\n",
                   static_cast<unsigned long long>(self->table->id_of(r).value()));
    }
    self->table->activation_done(r);
  }
  static void dispose_impl(TaskState* state) noexcept { static_cast<Activation*>(state)->~Activation(); }
};

EventTable::EventTable(Core& core, std::uint8_t runtime_tag) noexcept : core_(core), tag_(runtime_tag) {}

EventTable::~EventTable() {
  for (Registration* chunk : chunks_) {
    for (std::uint32_t i = 0; i < kChunkSize; ++i) {
      Registration& r = chunk[i];
      if (r.in_use && r.handler != nullptr && r.ops != nullptr) {
        r.ops->destroy(r.handler);
        if (r.heap_handler) task_free(r.handler);
      }
      r.~Registration();
    }
    ::operator delete(chunk, std::align_val_t{alignof(Registration)});
  }
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
    r->timer.fire = &on_timer;
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
  r->cancelled = false;
  r->running = r->pending = 0;
  r->priority = priority;
  r->ops = nullptr;
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
  table.activate(r);
}

void EventTable::activate(Registration* r) noexcept {
  if (r->pending == 0 && start_activation(r)) return;
  // No capsule free: keep the activation, start it when a capsule comes back. Not lost.
  ++r->pending;
  if (!r->on_pending_list) {
    r->on_pending_list = true;
    r->next_pending = nullptr;
    if (pending_tail_ != nullptr) pending_tail_->next_pending = r;
    else pending_head_ = r;
    pending_tail_ = r;
  }
}

bool EventTable::start_activation(Registration* r) noexcept {
  static_assert(sizeof(Activation) <= kFrameBytes && alignof(Activation) <= alignof(std::max_align_t));
  auto capsule = core_.acquire_capsule();
  if (!capsule) return false;
  auto* activation = new ((*capsule)->frame) Activation(this, r);
  activation->runner = &core_;
  ++r->running;
  core_.count_task();
  core_.launch(*capsule, activation);
  return true;
}

void EventTable::retry_pending() noexcept {
  while (pending_head_ != nullptr) {
    Registration* r = pending_head_;
    while (r->pending > 0 && !r->cancelled) {
      if (!start_activation(r)) return;  // still no capsule: try again next turn
      --r->pending;
    }
    pending_head_ = r->next_pending;
    if (pending_head_ == nullptr) pending_tail_ = nullptr;
    r->on_pending_list = false;
    r->pending = 0;
    if (r->cancelled && r->running == 0) retire(r);
    else if (r->period == Duration::zero() && r->running == 0 && !r->timer.node.armed()) retire(r);
  }
}

void EventTable::activation_done(Registration* r) noexcept {
  --r->running;
  if (r->running != 0 || r->on_pending_list) return;
  // A one-shot timer is over once its activation has run; a cancelled one once none runs.
  if (r->cancelled || (r->period == Duration::zero() && !r->timer.node.armed())) retire(r);
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
  // A one-shot timer that fired and whose handler still runs is over too.
  if (r->period == Duration::zero() && !r->timer.node.armed() && r->pending == 0) {
    return make_error_code(errc::stale_event_id);
  }
  if (r->timer.node.armed()) core_.wheel().cancel(r->timer.node);
  r->cancelled = true;
  r->pending = 0;
  if (r->running == 0 && !r->on_pending_list) retire(r);
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
