// runtime_events.hpp — the event layer as the scheduler sees it: RuntimeEvents (what the cores
// share: Config::policy's counts and the topic registry) makes each core's EventTable, and the
// accessors below find them from a Core or a RuntimeImpl.
#pragma once

#include "runtime/events/event_table.hpp"
#include "runtime/events/group_state.hpp"
#include "runtime/sched/core.hpp"
#include "runtime/sched/event_layer.hpp"
#include "runtime/sched/runtime_impl.hpp"

#include <aem/config.hpp>

#include <memory>
#include <mutex>

namespace aem::detail {

class TopicRegistry;

class RuntimeEvents final : public EventLayers {
 public:
  explicit RuntimeEvents(const Config& config) noexcept { limits.set(config.policy); }
  ~RuntimeEvents() override;
  std::unique_ptr<EventLayer> make_core(Core& core) noexcept override;
  void release() noexcept override;

  // limits are Config::policy and its counts across the cores (group_state.hpp).
  RuntimeLimits limits;
  // The topic registry (sources/topic.cpp), made there on first use; released before the
  // cores go: it holds retained events whose bytes live in the cores' arenas.
  std::once_flag topics_once;
  std::shared_ptr<TopicRegistry> topics;
};

// make_runtime_events makes the event layer of a runtime of `config`.
std::unique_ptr<EventLayers> make_runtime_events(const Config& config);

inline RuntimeEvents& runtime_events(RuntimeImpl& runtime) noexcept {
  return static_cast<RuntimeEvents&>(runtime.event_layers());
}
inline RuntimeLimits& runtime_limits(RuntimeImpl& runtime) noexcept { return runtime_events(runtime).limits; }

}  // namespace aem::detail
