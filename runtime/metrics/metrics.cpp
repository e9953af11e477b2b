// metrics.cpp — collecting every core's metrics from any thread (Runtime::metrics) or the
// calling core's (this_core::metrics).
#include "runtime/offload/blocking_pool.hpp"
#include "runtime/sched/core.hpp"
#include "runtime/sched/metrics_cell.hpp"
#include "runtime/sched/runtime_impl.hpp"

#include <aem/capsule.hpp>
#include <aem/metrics.hpp>
#include <aem/runtime.hpp>

#include <chrono>
#include <thread>

namespace aem {
namespace detail {
namespace {

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
  // The pool's gauges: it is shared by the cores, so they are read from it, not from a core.
  if (runtime.offload() != nullptr) {
    for (CoreMetrics& m : result) detail::BlockingPool::of(runtime).add_metrics(m);
  }
  return result;
}

namespace this_core {

Result<CoreMetrics> metrics() {
  detail::Core* core = detail::Core::current_core();
  if (core == nullptr) return make_error_code(errc::not_in_capsule);
  CoreMetrics m = core->snapshot_metrics();
  if (core->runtime().offload() != nullptr) detail::BlockingPool::of(core->runtime()).add_metrics(m);
  return m;
}

}  // namespace this_core
}  // namespace aem
