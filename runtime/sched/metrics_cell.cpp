// metrics_cell.cpp — taking a core's snapshot on its own thread and publishing it through its
// MetricsCell, where any thread reads it.
#include "runtime/sched/metrics_cell.hpp"

#include "runtime/sched/core.hpp"

#include <algorithm>

namespace aem::detail {
namespace {

// kPublishedFields are the scalar fields only the owning core can compute: it publishes them.
constexpr std::uint64_t CoreMetrics::* kPublishedFields[] = {
    &CoreMetrics::capsules_spawned, &CoreMetrics::cq_overflows,        &CoreMetrics::cq_dropped,
    &CoreMetrics::arena_fallbacks,  &CoreMetrics::accept_backoffs,     &CoreMetrics::receive_starvations,
    &CoreMetrics::capsules_live,    &CoreMetrics::capsules_pooled,     &CoreMetrics::tasks_live,
    &CoreMetrics::arena_bytes_in_use, &CoreMetrics::arena_capacity,    &CoreMetrics::arena_fallback_bytes,
    &CoreMetrics::receive_buffers,  &CoreMetrics::receive_buffers_missing, &CoreMetrics::capsule_pool_shortfalls,
};

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
  m.blocking_calls = counters_[kBlockingCalls].load(std::memory_order_relaxed);
  m.blocking_timeouts = counters_[kBlockingTimeouts].load(std::memory_order_relaxed);
  m.blocking_refusals = counters_[kBlockingRefusals].load(std::memory_order_relaxed);
  m.blocking_queue_wait_max_ns = counters_[kBlockingWaitMaxNs].load(std::memory_order_relaxed);
  m.stalls = counters_[kStalls].load(std::memory_order_relaxed);
  m.stall_max_ns = counters_[kStallMaxNs].load(std::memory_order_relaxed);
  for (unsigned i = 0; i < kPublished; ++i) m.*kPublishedFields[i] = published_[i].load(std::memory_order_relaxed);
  return m;
}

// ---- Core --------------------------------------------------------------------------------

CoreMetrics Core::snapshot_metrics() noexcept {
  CoreMetrics m;
  for (unsigned p = 0; p < kPriorityLevels; ++p) m.ready_capsules[p] = ready_.count(p);
  std::size_t pooled = 0;
  for (const CapsuleControl* capsule = pool_; capsule != nullptr; capsule = capsule->ready_next) ++pooled;
  m.capsules_pooled = pooled;
  m.capsules_live = capsules_ - pooled;
  m.capsules_spawned = next_sequence_ - 1;
  m.capsule_pool_shortfalls = pool_shortfalls_;
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
  if (events_) events_->add_metrics(m);
  metrics_.publish(m);
  return metrics_.read(index_);
}

}  // namespace aem::detail
