// topic.cpp — publish/subscribe: the runtime's topic registry (subscriptions and retained
// events, under one mutex held only to match and copy), delivery to the subscriptions of the
// calling core, and the hop that carries an event to another core's subscriptions through that
// core's mailbox, so the publisher never waits.
#include "runtime/events/runtime_events.hpp"
#include "runtime/events/sources/topic_registry.hpp"
#include "base/log.hpp"

#include "runtime/sched/core.hpp"
#include "runtime/events/event_table.hpp"
#include "runtime/sched/runtime_impl.hpp"
#include "alloc/task_memory.hpp"

#include <aem/topic.hpp>

#include <algorithm>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <new>
#include <vector>

namespace aem::detail {

namespace {

struct TopicSubscription {
  EventId id;
  TopicFilter filter;
};

struct RetainedEvent {
  std::string name;
  SharedEventData data;
  SharedEventData name_block;  // what deliveries carry as Payload::topic
  std::uint8_t priority = kOwnPriority;
  TimePoint expiry;
};

// Target is one subscription a publish reaches.
struct Target {
  EventId id;
};

}  // namespace

class TopicRegistry {
 public:
  // of returns the registry of `runtime`, making it on first use. Throws std::bad_alloc.
  static TopicRegistry& of(RuntimeImpl& runtime) {
    RuntimeEvents& events = runtime_events(runtime);
    std::call_once(events.topics_once, [&events] { events.topics = std::make_shared<TopicRegistry>(); });
    return *events.topics;
  }

  // expire drops the retained events whose retention is over. Under the mutex.
  void expire(TimePoint now) noexcept {
    std::erase_if(retained, [now](const RetainedEvent& e) { return e.expiry <= now; });
  }

  void remove(EventId id) noexcept {
    std::lock_guard lock(mutex);
    std::erase_if(subscriptions, [id](const TopicSubscription& s) { return s.id == id; });
  }

  std::mutex mutex;
  std::vector<TopicSubscription> subscriptions;  // in subscription order
  std::deque<RetainedEvent> retained;            // in publish order
  std::uint64_t retained_dropped = 0;            // pushed out by kMaxRetainedEvents
};

namespace {

// copy_of returns a payload that shares `model`'s bytes and name.
Payload copy_of(const Payload& model) noexcept {
  Payload p;
  p.shared = model.shared;
  p.topic = model.topic;
  p.priority = model.priority;
  return p;
}

// deliver_here activates the subscriptions `targets` (of the calling core) with `model`: the
// last one takes it whole, the others share its bytes. A subscription found stale (cancelled
// since the snapshot) is skipped and left off the registry. Returns how many it reached.
std::size_t deliver_here(Core& core, const Target* targets, std::size_t n, Payload& model) noexcept {
  std::size_t reached = 0;
  for (std::size_t i = 0; i < n; ++i) {
    Payload p = i + 1 == n ? std::move(model) : copy_of(model);
    if (event_table(core).deliver_topic(targets[i].id, p)) {
      ++reached;
    } else {
      try {
        TopicRegistry::of(core.runtime()).remove(targets[i].id);
      } catch (...) {
      }
    }
  }
  return reached;
}

// TopicHop carries one event to the subscriptions of another core: a task posted to that
// core's mailbox and run on its dispatcher as it arrives (kMailRun; delivering never
// suspends), so hops are delivered in the order they were posted and none waits for a capsule.
struct TopicHop final : TaskState {
  std::vector<Target> targets;
  Payload payload;

  TopicHop(std::vector<Target>&& t, Payload&& p) noexcept : targets(std::move(t)), payload(std::move(p)) {
    run = &run_impl;
    dispose = &dispose_impl;
    home = TaskHome::heap;
    flags.store(kReleased, std::memory_order_relaxed);
  }
  static void run_impl(TaskState* state) noexcept {
    auto* self = static_cast<TopicHop*>(state);
    (void)deliver_here(*Core::current_core(), self->targets.data(), self->targets.size(), self->payload);
    self->targets.clear();
  }
  static void dispose_impl(TaskState* state) noexcept { static_cast<TopicHop*>(state)->~TopicHop(); }
};

// post_hop sends `payload` to the subscriptions `targets` of core `index`. False when it could
// not (out of memory); the caller reports it.
bool post_hop(RuntimeImpl& runtime, unsigned index, std::vector<Target>&& targets, Payload&& payload) noexcept {
  void* memory = nullptr;
  try {
    memory = task_allocate(sizeof(TopicHop), alignof(TopicHop));
  } catch (const std::bad_alloc&) {
    return false;
  }
  runtime.core(index).run_on_dispatcher(new (memory) TopicHop(std::move(targets), std::move(payload)));
  return true;
}

Result<SharedEventData> name_block(Core& core, std::string_view topic) {
  Result<EventData> block = core.arena().allocate_data(topic.size());
  if (!block) return block.error();
  std::memcpy(block->data(), topic.data(), topic.size());
  return SharedEventData::share(std::move(*block));
}

}  // namespace

// ---- the event table's half -----------------------------------------------------------------

EventId EventTable::arm_topic(Registration* r, const HandlerOps* ops) noexcept {
  r->ops = ops;
  r->kind = SourceType::topic;
  return id_of(r);
}

Result<void> EventTable::deliver_topic(EventId id, Payload& payload) noexcept {
  Result<Registration*> found = lookup(id);
  if (!found) return found.error();
  if ((*found)->kind != SourceType::topic) return make_error_code(errc::invalid_argument);
  dispatcher_.activate(*found, payload);
  return {};
}

void topic_cancelled(RuntimeImpl& runtime, EventId id) noexcept {
  try {
    TopicRegistry::of(runtime).remove(id);
  } catch (...) {
    // of() made the registry when the subscription was armed: it cannot fail here
  }
}

Result<void> topic_check_filter(const TopicFilter& filter) noexcept {
  switch (filter.kind) {
    case TopicFilter::Kind::any:
      if (filter.pattern.empty()) return {};
      break;
    case TopicFilter::Kind::exact:
    case TopicFilter::Kind::prefix:
    case TopicFilter::Kind::suffix:
      if (!filter.pattern.empty() && filter.pattern.size() <= kMaxTopicName) return {};
      break;
  }
  return make_error_code(errc::invalid_argument);
}

Result<EventId> arm_topic(const RegistrationSlot& slot, const HandlerOps* ops, TopicFilter& filter) noexcept {
  Core& core = *Core::current_core();
  EventTable& table = event_table(core);
  auto* r = static_cast<Registration*>(slot.registration);
  const EventId id = table.arm_topic(r, ops);
  // The retained events are copied under the same lock that adds the subscription, and a
  // publish retains and matches under it too: each event reaches the subscription exactly once,
  // as retained or as new. They are delivered before this capsule can suspend, so before any
  // hop of a later publish runs here.
  std::vector<Payload> backlog;
  try {
    TopicRegistry& registry = TopicRegistry::of(core.runtime());
    std::lock_guard lock(registry.mutex);
    registry.expire(Clock::now());
    for (const RetainedEvent& e : registry.retained) {
      if (!filter.matches(e.name)) continue;
      Payload p;
      p.shared = e.data;
      p.topic = e.name_block;
      p.priority = e.priority;
      backlog.push_back(std::move(p));
    }
    registry.subscriptions.push_back({id, std::move(filter)});
  } catch (...) {
    (void)table.cancel(id);
    return make_error_code(errc::out_of_memory);
  }
  for (Payload& p : backlog) (void)table.deliver_topic(id, p);
  return id;
}

}  // namespace aem::detail

namespace aem {

Result<std::size_t> publish(std::string_view topic, EventData data, PublishOptions options) {
  using namespace detail;
  Core* core = Core::api_caller();
  if (core == nullptr) return make_error_code(errc::not_in_capsule);
  if (topic.empty() || topic.size() > kMaxTopicName || options.retention < Duration::zero() ||
      (options.priority && !is_valid(*options.priority))) {
    return make_error_code(errc::invalid_argument);
  }
  RuntimeImpl& runtime = core->runtime();
  if (runtime.stopping()) return make_error_code(errc::shutting_down);

  Payload model;
  model.priority = options.priority ? static_cast<std::uint8_t>(*options.priority) : kOwnPriority;
  Result<SharedEventData> name = name_block(*core, topic);
  if (!name) return name.error();
  model.topic = std::move(*name);
  const bool retain = options.retention > Duration::zero();
  if (retain) {
    // The registry keeps a reference: the bytes are shared from the start.
    Result<SharedEventData> shared = SharedEventData::share(std::move(data));
    if (!shared) return shared.error();
    model.shared = std::move(*shared);
  } else {
    model.data = std::move(data);
  }

  std::vector<Target> targets;
  try {
    TopicRegistry& registry = TopicRegistry::of(runtime);
    std::lock_guard lock(registry.mutex);
    const TimePoint now = Clock::now();
    registry.expire(now);
    for (const TopicSubscription& s : registry.subscriptions) {
      if (s.filter.matches(topic)) targets.push_back({s.id});
    }
    if (retain) {
      if (registry.retained.size() >= kMaxRetainedEvents) {
        registry.retained.pop_front();
        ++registry.retained_dropped;
      }
      const TimePoint expiry = options.retention >= TimePoint::max() - now ? TimePoint::max() : now + options.retention;
      registry.retained.push_back({std::string(topic), model.shared, model.topic, model.priority, expiry});
    }
  } catch (const std::bad_alloc&) {
    return make_error_code(errc::out_of_memory);
  }
  if (targets.empty()) return std::size_t{0};
  if (targets.size() > 1 && model.data) {
    Result<SharedEventData> shared = SharedEventData::share(std::move(model.data));
    if (!shared) return shared.error();
    model.shared = std::move(*shared);
  }

  // Grouped by core, each group in subscription order: one hop per other core.
  std::stable_sort(targets.begin(), targets.end(),
                   [](const Target& a, const Target& b) { return a.id.core() < b.id.core(); });
  const unsigned here = core->index();
  std::size_t reached = 0;
  std::size_t local_begin = 0;
  std::size_t local_end = 0;
  for (std::size_t begin = 0; begin < targets.size();) {
    const unsigned index = targets[begin].id.core();
    std::size_t end = begin;
    while (end < targets.size() && targets[end].id.core() == index) ++end;
    if (index == here) {
      local_begin = begin;
      local_end = end;
    } else if (index < runtime.core_count() && !runtime.stopping()) {
      // A lone subscription takes the event whole (its EventData, when it was not shared).
      Payload payload = targets.size() == 1 ? std::move(model) : copy_of(model);
      std::vector<Target> group;
      try {
        group.assign(targets.begin() + static_cast<std::ptrdiff_t>(begin), targets.begin() + static_cast<std::ptrdiff_t>(end));
      } catch (const std::bad_alloc&) {
      }
      if (!group.empty() && post_hop(runtime, index, std::move(group), std::move(payload))) {
        reached += end - begin;
      } else {
        log(LogLevel::error, "out of memory sending topic %.*s to core %u; %zu subscriptions miss it",
            static_cast<int>(topic.size()), topic.data(), index, end - begin);
      }
    }
    begin = end;
  }
  if (local_end > local_begin) reached += deliver_here(*core, targets.data() + local_begin, local_end - local_begin, model);
  return reached;
}

}  // namespace aem
