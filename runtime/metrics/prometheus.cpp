// prometheus.cpp — CoreMetrics in the Prometheus text exposition format (0.0.4).
#include <aem/metrics.hpp>

#include <charconv>
#include <cstdio>

namespace aem {
namespace {

// Family describes one metric family: a scalar field or a per-priority one (exactly one of
// the two member pointers is set). Idle time is kept in nanoseconds and shown in seconds, the
// format's base unit.
struct Family {
  const char* name;
  const char* type;
  const char* help;
  std::uint64_t CoreMetrics::* scalar;
  PriorityCounts CoreMetrics::* levels;
  bool nanoseconds_as_seconds;
  bool runtime_wide = false;  // the same on every core: one sample, without a core label
};

constexpr Family kFamilies[] = {
    {"aem_activations_total", "counter", "Events activated, by the priority of their registration.", nullptr,
     &CoreMetrics::activations, false},
    {"aem_deliveries_total", "counter", "Activations whose handler was started.", nullptr, &CoreMetrics::deliveries,
     false},
    {"aem_lost_events_total", "counter", "Activations that could not be kept; the application was told.", nullptr,
     &CoreMetrics::lost_events, false},
    {"aem_capsules_spawned_total", "counter", "Capsules started on the core.", &CoreMetrics::capsules_spawned,
     nullptr, false},
    {"aem_priority_boosts_total", "counter", "Capsules raised above the priority they had.",
     &CoreMetrics::priority_boosts, nullptr, false},
    {"aem_loop_turns_total", "counter", "Turns of the core's loop.", &CoreMetrics::loop_turns, nullptr, false},
    {"aem_idle_seconds_total", "counter", "Time the core slept in the kernel waiting for work.",
     &CoreMetrics::idle_ns, nullptr, true},
    {"aem_spin_seconds_total", "counter", "Time the core polled for work before it slept (or found some).",
     &CoreMetrics::spin_ns, nullptr, true},
    {"aem_cq_overflows_total", "counter", "Times completions waited in the kernel for room in the completion queue.",
     &CoreMetrics::cq_overflows, nullptr, false},
    {"aem_cq_dropped_total", "counter", "Completions the kernel dropped for want of room.", &CoreMetrics::cq_dropped,
     nullptr, false},
    {"aem_arena_fallbacks_total", "counter", "Event-data allocations served by the general heap.",
     &CoreMetrics::arena_fallbacks, nullptr, false},
    {"aem_accept_backoffs_total", "counter", "Accepts paused for want of descriptors or memory.",
     &CoreMetrics::accept_backoffs, nullptr, false},
    {"aem_receive_starvations_total", "counter", "Receives paused for want of receive buffers.",
     &CoreMetrics::receive_starvations, nullptr, false},
    {"aem_capsule_pool_shortfalls_total", "counter", "Capsule pool growths that could not map every stack wanted.",
     &CoreMetrics::capsule_pool_shortfalls, nullptr, false},
    {"aem_blocking_calls_total", "counter", "aem::blocking calls of the core's capsules handed to the pool.",
     &CoreMetrics::blocking_calls, nullptr, false},
    {"aem_blocking_timeouts_total", "counter", "aem::blocking calls whose capsule gave up at its deadline.",
     &CoreMetrics::blocking_timeouts, nullptr, false},
    {"aem_blocking_refusals_total", "counter", "aem::blocking calls refused because the pool's queue was full.",
     &CoreMetrics::blocking_refusals, nullptr, false},
    {"aem_ready_capsules", "gauge", "Capsules in the ready queue, by priority.", nullptr, &CoreMetrics::ready_capsules,
     false},
    {"aem_pending_activations", "gauge", "Activations queued in registrations and not started, by priority.", nullptr,
     &CoreMetrics::pending_activations, false},
    {"aem_capsules_live", "gauge", "Capsules out of the pool.", &CoreMetrics::capsules_live, nullptr, false},
    {"aem_capsules_pooled", "gauge", "Capsules free in the pool.", &CoreMetrics::capsules_pooled, nullptr, false},
    {"aem_tasks_live", "gauge", "Spawned functions that have not returned.", &CoreMetrics::tasks_live, nullptr, false},
    {"aem_arena_in_use_bytes", "gauge", "Event-data arena bytes handed out.", &CoreMetrics::arena_bytes_in_use,
     nullptr, false},
    {"aem_arena_capacity_bytes", "gauge", "Event-data arena size.", &CoreMetrics::arena_capacity, nullptr, false},
    {"aem_arena_fallback_bytes", "gauge", "General-heap bytes held by fallback allocations.",
     &CoreMetrics::arena_fallback_bytes, nullptr, false},
    {"aem_receive_buffers", "gauge", "Receive buffers of the core.", &CoreMetrics::receive_buffers, nullptr, false},
    {"aem_receive_buffers_missing", "gauge", "Receive buffers handed to handlers and not yet replaced.",
     &CoreMetrics::receive_buffers_missing, nullptr, false},
    {"aem_stalls_total", "counter", "Times the core ran one capsule or loop turn past the stall threshold.",
     &CoreMetrics::stalls, nullptr, false},
    {"aem_stall_max_seconds", "gauge", "The longest stall of the core.", &CoreMetrics::stall_max_ns, nullptr, true},
    {"aem_blocking_queue_wait_max_seconds", "gauge", "The longest an aem::blocking call of the core waited for a pool thread.",
     &CoreMetrics::blocking_queue_wait_max_ns, nullptr, true},
    {"aem_blocking_queued", "gauge", "aem::blocking calls of the core waiting for a pool thread.",
     &CoreMetrics::blocking_queued, nullptr, false},
    {"aem_blocking_busy", "gauge", "aem::blocking calls of the core running on pool threads.",
     &CoreMetrics::blocking_busy, nullptr, false},
    {"aem_blocking_threads", "gauge", "Threads of the runtime's blocking pool, idle ones included.",
     &CoreMetrics::blocking_threads, nullptr, false, true},
};

void append_number(std::string& out, std::uint64_t value) {
  char digits[24];
  const auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
  out.append(digits, end);
}

void append_value(std::string& out, const Family& family, std::uint64_t value) {
  if (!family.nanoseconds_as_seconds) {
    append_number(out, value);
    return;
  }
  // Whole seconds and nine decimals: exact, whatever the magnitude (a double would round).
  char fraction[16];
  std::snprintf(fraction, sizeof fraction, ".%09llu", static_cast<unsigned long long>(value % 1'000'000'000));
  append_number(out, value / 1'000'000'000);
  out += fraction;
}

// append_sample adds `name{core="N"[,priority="P"]} value`.
void append_sample(std::string& out, const Family& family, unsigned core, int priority, std::uint64_t value) {
  out += family.name;
  out += "{core=\"";
  append_number(out, core);
  out += '"';
  if (priority >= 0) {
    out += ",priority=\"";
    append_number(out, static_cast<std::uint64_t>(priority));
    out += '"';
  }
  out += "} ";
  append_value(out, family, value);
  out += '\n';
}

}  // namespace

std::string to_prometheus(const std::vector<CoreMetrics>& cores) {
  std::string out;
  out.reserve(256 + cores.size() * 4096);
  for (const Family& family : kFamilies) {
    out.append("# HELP ").append(family.name).append(" ").append(family.help).append("\n");
    out.append("# TYPE ").append(family.name).append(" ").append(family.type).append("\n");
    if (family.runtime_wide) {
      if (!cores.empty()) {
        out.append(family.name).append(" ");
        append_value(out, family, cores.front().*family.scalar);
        out += '\n';
      }
      continue;
    }
    for (const CoreMetrics& core : cores) {
      if (family.scalar != nullptr) {
        append_sample(out, family, core.core, -1, core.*family.scalar);
        continue;
      }
      const PriorityCounts& levels = core.*family.levels;
      for (unsigned p = 0; p < kPriorityLevels; ++p) append_sample(out, family, core.core, static_cast<int>(p), levels[p]);
    }
  }
  return out;
}

}  // namespace aem
