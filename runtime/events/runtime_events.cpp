// runtime_events.cpp — the event layer's side of the scheduler's EventLayer interface.
#include "runtime/events/runtime_events.hpp"

#include "runtime/events/sources/error_event.hpp"
#include "runtime/events/sources/topic_registry.hpp"

#include <cerrno>
#include <new>

namespace aem::detail {

RuntimeEvents::~RuntimeEvents() = default;

std::unique_ptr<EventLayer> RuntimeEvents::make_core(Core& core) noexcept {
  return std::unique_ptr<EventLayer>(new (std::nothrow) EventTable(core, core.runtime().tag()));
}

void RuntimeEvents::release() noexcept { topics.reset(); }

std::unique_ptr<EventLayers> make_runtime_events(const Config& config) { return std::make_unique<RuntimeEvents>(config); }

void EventTable::release_task(TaskState* task) noexcept { detail::release_task(core_.runtime(), task); }

void EventTable::raise_error(Subsystem subsystem, int error, std::uint64_t count) noexcept {
  raise_subsystem_error(core_, subsystem, error, count);
}

void EventTable::add_metrics(CoreMetrics& metrics) const noexcept {
  std::uint64_t pending[kPriorityLevels] = {};
  dispatcher_.pending_by_priority(pending);
  for (unsigned p = 0; p < kPriorityLevels; ++p) metrics.pending_activations[p] = pending[p];
  const SocketEventStats sockets = sources_.socket_event_stats();
  metrics.accept_backoffs = sockets.accept_backoffs;
  metrics.receive_starvations = sockets.receive_starvations;
  metrics.receive_buffers = sockets.receive_buffers;
  metrics.receive_buffers_missing = sockets.receive_buffers_missing;
}

ArenaConfig EventTable::arena_config(const ArenaConfig& config) { return with_pressure_events(core_, config); }

}  // namespace aem::detail
