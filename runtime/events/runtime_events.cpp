// runtime_events.cpp — the event layer's side of the scheduler's EventLayer interface.
#include "runtime/events/runtime_events.hpp"

#include "runtime/events/sources/error_event.hpp"
#include "runtime/events/sources/topic_registry.hpp"

#include <cerrno>
#include <cstring>
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

RegistrationSummary EventTable::summary() const noexcept {
  RegistrationSummary summary;
  for (std::size_t kind = 0; kind < RegistrationSummary::kKinds; ++kind) {
    summary.kind_names[kind] = source_name(static_cast<SourceType>(kind));
  }
  const Registration* fullest = nullptr;
  for_each_in_use([&](const Registration& r) {
    if (!r.cancelled) ++summary.live[static_cast<std::size_t>(r.kind)];
    const std::size_t depth = r.queue.size();
    if (depth > summary.fullest_depth) {
      summary.fullest_depth = depth;
      fullest = &r;
    }
  });
  if (fullest != nullptr) {
    static_assert(sizeof(EventName::text) == sizeof(RegistrationSummary::fullest_name));
    std::memcpy(summary.fullest_name, event_name(fullest->kind, id_of(fullest)).text, sizeof summary.fullest_name);
    summary.fullest_site = fullest->site;
  }
  return summary;
}

ArenaConfig EventTable::arena_config(const ArenaConfig& config) { return with_pressure_events(core_, config); }

}  // namespace aem::detail
