// metrics.hpp — per-core counters and gauges of a Runtime, as a struct and in the Prometheus
// text exposition format.
#pragma once

#include <aem/error.hpp>
#include <aem/export.hpp>
#include <aem/priority.hpp>
#include <aem/result.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace aem {

// PriorityCounts holds one value per priority level, indexed by the level (0..7).
using PriorityCounts = std::array<std::uint64_t, kPriorityLevels>;

// CoreMetrics is a snapshot of one core. Counters only grow for the life of the Runtime
// (across restarts); gauges tell the state at the snapshot.
struct CoreMetrics {
  unsigned core = 0;  // the core's index

  // ---- counters
  PriorityCounts activations{};  // events activated, by their registration's priority
  PriorityCounts deliveries{};   // activations whose handler was started
  PriorityCounts lost_events{};  // activations that could not be kept (the application was told)
  std::uint64_t capsules_spawned = 0;      // capsules started on this core
  std::uint64_t priority_boosts = 0;       // capsules raised above their priority (inheritance, boosts)
  std::uint64_t loop_turns = 0;            // turns of the core's loop
  std::uint64_t idle_ns = 0;               // nanoseconds the core slept in the kernel, waiting for work
  std::uint64_t spin_ns = 0;               // nanoseconds the idle core polled for work (Config::idle_spin)
  std::uint64_t cq_overflows = 0;          // times completions had to wait in the kernel for CQ room
  std::uint64_t cq_dropped = 0;            // completions the kernel dropped (0 with IORING_FEAT_NODROP)
  std::uint64_t arena_fallbacks = 0;       // event-data allocations served by the general heap
  std::uint64_t accept_backoffs = 0;       // accepts paused for want of descriptors or memory
  std::uint64_t receive_starvations = 0;   // receives paused for want of receive buffers
  std::uint64_t capsule_pool_shortfalls = 0;  // pool growths that could not map every stack wanted
  std::uint64_t blocking_calls = 0;        // aem::blocking calls of the core's capsules handed to the pool
  std::uint64_t blocking_timeouts = 0;     // of which the capsule gave up at its deadline
  std::uint64_t blocking_refusals = 0;     // aem::blocking calls refused: errc::blocking_queue_full
  std::uint64_t stalls = 0;                // times the core ran past Config::stall_threshold without switching
  std::uint64_t stall_max_ns = 0;          // the longest such stall, in nanoseconds

  // ---- gauges
  PriorityCounts ready_capsules{};        // capsules in the ready queue, by priority
  PriorityCounts pending_activations{};   // activations queued in registrations, not started yet
  std::uint64_t capsules_live = 0;        // capsules out of the pool: running, ready, suspended or holding a result
  std::uint64_t capsules_pooled = 0;      // capsules mapped and free for the next spawn
  std::uint64_t tasks_live = 0;           // spawned functions that have not returned
  std::uint64_t arena_bytes_in_use = 0;   // event-data arena: bytes handed out
  std::uint64_t arena_capacity = 0;       // event-data arena: its size
  std::uint64_t arena_fallback_bytes = 0; // general-heap bytes held by fallback allocations
  std::uint64_t receive_buffers = 0;      // the core's receive buffers (0 before its first on_data)
  std::uint64_t receive_buffers_missing = 0;  // of which handed to handlers and not yet replaced
  std::uint64_t blocking_queue_wait_max_ns = 0;  // the longest a call of the core waited for a pool thread
  std::uint64_t blocking_queued = 0;      // calls of the core waiting for a pool thread
  std::uint64_t blocking_busy = 0;        // calls of the core running on pool threads
  // blocking_threads counts the runtime's pool threads (idle ones too). The pool is shared by
  // all cores: the same value in every core's snapshot, and one sample without a core label
  // in to_prometheus.
  std::uint64_t blocking_threads = 0;
};

// to_prometheus renders `cores` in the Prometheus text exposition format (version 0.0.4): one
// metric family per field, named aem_<field> (counters end in _total; idle and spin times are
// aem_idle_seconds_total and aem_spin_seconds_total), each with its # HELP and # TYPE lines,
// one sample per core labelled core="N", and per priority labelled priority="P" where the
// field has one value per level.
// Call from any thread.
//
// Example:
//   aem::Runtime rt(aem::Config{.cores = 2});
//   (void)rt.start();
//   std::string page = aem::to_prometheus(rt.metrics());  // serve it at /metrics
AEM_EXPORT std::string to_prometheus(const std::vector<CoreMetrics>& cores);

namespace this_core {

// metrics returns a snapshot of the calling core, taken at once. Call from a capsule.
// Errors: errc::not_in_capsule on a thread that is not one of a runtime's cores.
AEM_EXPORT Result<CoreMetrics> metrics();

}  // namespace this_core
}  // namespace aem
