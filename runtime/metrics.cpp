// metrics.cpp — taking a core's snapshot on its own thread, publishing it through its
// MetricsCell, and collecting every core's from any thread (Runtime::metrics).
#include "runtime/metrics_cell.hpp"

#include "runtime/core.hpp"
#include "runtime/runtime_impl.hpp"

#include <aem/capsule.hpp>
#include <aem/core_arena.hpp>
#include <aem/metrics.hpp>
#include <aem/net/events.hpp>
#include <aem/runtime.hpp>

#include <algorithm>
#include <chrono>
#include <thread>

namespace aem {
namespace detail {
namespace {

// kPublishedFields are the scalar fields only the owning core can compute: it publishes them.
constexpr std::uint64_t CoreMetrics::* kPublishedFields[] = {
    &CoreMetrics::capsules_spawned, &CoreMetrics::cq_overflows,        &CoreMetrics::cq_dropped,
    &CoreMetrics::arena_fallbacks,  &CoreMetrics::accept_backoffs,     &CoreMetrics::receive_starvations,
    &CoreMetrics::capsules_live,    &CoreMetrics::capsules_pooled,     &CoreMetrics::tasks_live,
    &CoreMetrics::arena_bytes_in_use, &CoreMetrics::arena_capacity,    &CoreMetrics::arena_fallback_bytes,
    &CoreMetrics::receive_buffers,  &CoreMetrics::receive_buffers_missing,
};

// wait_served waits until `cell` has served `ticket` or stopped serving. On a core (`own`) it
// answers that core's own requests meanwhile (two cores reading each other would otherwise
// wait for each other), and in a capsule it lets the core's other capsules run.
void wait_served(const MetricsCell& cell, std::uint64_t ticket, Core* own) {
  for (unsigned spins = 0; !cell.served(ticket) && cell.serving(); ++spins) {
    if (own != nullptr) own->serve_metrics();  // also from an inline handler, on the dispatcher
    if (own != nullptr && own->current() != nullptr) {
      this_capsule::yield();
      std::this_thread::yield();
    } else if (spins < 64) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
}

}  // namespace

void MetricsCell::publish(const CoreMetrics& now) noexcept {
  static_assert(std::size(kPublishedFields) == kPublished);
  // Served up to what was requested before the gauges were taken: read that first.
  const std::uint64_t requests = requests_.load(std::memory_order_acquire);
  for (unsigned i = 0; i < kPublished; ++i) published_[i].store(now.*kPublishedFields[i], std::memory_order_relaxed);
  for (unsigned p = 0; p < kPriorityLevels; ++p) {
    ready_[p].store(now.ready_capsules[p], std::memory_order_relaxed);
    per_level_[kPending][p].store(now.pending_activations[p], std::memory_order_relaxed);
  }
  served_.store(requests, std::memory_order_release);
}

CoreMetrics MetricsCell::read(unsigned core) const noexcept {
  CoreMetrics m;
  m.core = core;
  for (unsigned p = 0; p < kPriorityLevels; ++p) {
    m.activations[p] = per_level_[kActivations][p].load(std::memory_order_relaxed);
    m.deliveries[p] = per_level_[kDeliveries][p].load(std::memory_order_relaxed);
    m.lost_events[p] = per_level_[kLost][p].load(std::memory_order_relaxed);
    m.pending_activations[p] = per_level_[kPending][p].load(std::memory_order_relaxed);
    m.ready_capsules[p] = ready_[p].load(std::memory_order_relaxed);
  }
  m.priority_boosts = counters_[kPriorityBoosts].load(std::memory_order_relaxed);
  m.loop_turns = counters_[kLoopTurns].load(std::memory_order_relaxed);
  m.idle_ns = counters_[kIdleNs].load(std::memory_order_relaxed);
  m.spin_ns = counters_[kSpinNs].load(std::memory_order_relaxed);
  for (unsigned i = 0; i < kPublished; ++i) m.*kPublishedFields[i] = published_[i].load(std::memory_order_relaxed);
  return m;
}

// ---- Core --------------------------------------------------------------------------------

CoreMetrics Core::snapshot_metrics() noexcept {
  CoreMetrics m;
  for (unsigned p = 0; p < kPriorityLevels; ++p) m.ready_capsules[p] = ready_.count(p);
  if (events_) {
    std::uint64_t pending[kPriorityLevels] = {};
    events_->pending_by_priority(pending);
    for (unsigned p = 0; p < kPriorityLevels; ++p) m.pending_activations[p] = pending[p];
  }
  std::size_t pooled = 0;
  for (const CapsuleControl* capsule = pool_; capsule != nullptr; capsule = capsule->ready_next) ++pooled;
  m.capsules_pooled = pooled;
  m.capsules_live = capsules_ - pooled;
  m.capsules_spawned = next_sequence_ - 1;
  m.tasks_live = static_cast<std::uint64_t>(std::max<std::int64_t>(live_.load(std::memory_order_relaxed), 0));
  if (backend_) {
    const BackendStats backend = backend_->stats();
    m.cq_overflows = backend.cq_overflows;
    m.cq_dropped = backend.cq_dropped;
  }
  if (arena_) {
    const ArenaStats arena = arena_->stats();
    m.arena_bytes_in_use = arena.bytes_in_use;
    m.arena_capacity = arena.capacity;
    m.arena_fallbacks = arena.fallback_count;
    m.arena_fallback_bytes = arena.fallback_bytes;
  }
  if (events_ && t_current == this) {  // socket_event_stats reads the calling core's table
    const SocketEventStats sockets = this_core::socket_event_stats();
    m.accept_backoffs = sockets.accept_backoffs;
    m.receive_starvations = sockets.receive_starvations;
    m.receive_buffers = sockets.receive_buffers;
    m.receive_buffers_missing = sockets.receive_buffers_missing;
  }
  metrics_.publish(m);
  return metrics_.read(index_);
}

}  // namespace detail

// ---- public ------------------------------------------------------------------------------

std::vector<CoreMetrics> Runtime::metrics() const {
  detail::RuntimeImpl& runtime = *impl_;
  detail::Core* own = detail::Core::current_core();
  if (own != nullptr && &own->runtime() != &runtime) own = nullptr;
  const unsigned count = runtime.core_count();
  std::vector<std::uint64_t> tickets(count, 0);
  for (unsigned i = 0; i < count; ++i) {
    detail::Core& core = runtime.core(i);
    if (&core == own || !core.metrics().serving()) continue;
    tickets[i] = core.metrics().request();
    core.notify();
  }
  std::vector<CoreMetrics> result;
  result.reserve(count);
  for (unsigned i = 0; i < count; ++i) {
    detail::Core& core = runtime.core(i);
    if (&core == own) {
      result.push_back(core.snapshot_metrics());
      continue;
    }
    if (tickets[i] != 0) detail::wait_served(core.metrics(), tickets[i], own);
    result.push_back(core.metrics().read(i));
  }
  return result;
}

namespace this_core {

Result<CoreMetrics> metrics() {
  detail::Core* core = detail::Core::current_core();
  if (core == nullptr) return make_error_code(errc::not_in_capsule);
  return core->snapshot_metrics();
}

}  // namespace this_core
}  // namespace aem
