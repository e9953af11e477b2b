// topic.hpp — topics: publish/subscribe on named channels (after the SAF event service). A
// publisher publishes an event — a topic name and bytes — with an optional priority and a
// retention time; every subscription whose filter matches the name, on every core of the
// runtime, gets it. Retained events reach late subscribers until their retention expires. A
// subscriber that cannot keep up is told how many it lost (a topic cannot wait: never throttled).
//
// A subscription is an ordinary registration (aem::ctl works on its id: disable, enable,
// set_priority, set_filter, set_timeout, replace_handler, info, cancel); cancelling it takes it
// off its topics at once.
//
// Sharing: one publish shares its bytes, by reference count (SharedEventData), between every
// subscription it reaches on every core — nothing is copied unless a handler takes EventData
// while the event reached several subscriptions (then that handler gets a private copy, from
// its own core's arena), as for any fanned-out activation. An event that reaches exactly one
// subscription and is not retained moves there whole.
//
// Retention: every event published with retention > 0 is kept (all of them, not only the latest
// per name) until it expires, up to kMaxRetainedEvents per runtime; past that the oldest is
// dropped. A new subscription gets the unexpired retained events its filter matches, in publish
// order, before any event published after it subscribed.
//
// Example:
//   auto id = aem::subscribe(aem::TopicFilter::prefix("sensors."),
//                            [](std::string_view topic, aem::SharedEventData bytes) { record(topic, bytes.bytes()); },
//                            {.priority = aem::Priority::high, .exec = aem::Executor::keepalive});
//   aem::Result<std::size_t> reached = aem::publish("sensors.temp", std::move(reading), {.retention = 5s});
//   aem::ctl(*id).cancel();  // no more deliveries
#pragma once

#include <aem/detail/invoke.hpp>
#include <aem/detail/registration.hpp>
#include <aem/event_data.hpp>
#include <aem/event_id.hpp>
#include <aem/executor.hpp>
#include <aem/export.hpp>
#include <aem/priority.hpp>
#include <aem/result.hpp>
#include <aem/shared_event_data.hpp>
#include <aem/time.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace aem {

// kMaxTopicName is the longest topic name (and filter pattern) in bytes.
inline constexpr std::size_t kMaxTopicName = 255;
// kMaxRetainedEvents bounds the retained events of one runtime; the oldest goes first.
inline constexpr std::size_t kMaxRetainedEvents = 1024;

// TopicFilter selects the topic names a subscription gets. Names are compared byte by byte.
//
// Example:
//   aem::TopicFilter::exact("orders.new");   // that name only
//   aem::TopicFilter::prefix("sensors.");    // sensors.temp, sensors.door.3, ...
//   aem::TopicFilter::suffix(".temp");       // sensors.temp, room.4.temp, ...
//   aem::TopicFilter::any();                 // every name
struct TopicFilter {
  enum class Kind : std::uint8_t { exact, prefix, suffix, any };
  Kind kind = Kind::any;
  std::string pattern;  // 1..kMaxTopicName bytes; empty for `any`

  static TopicFilter exact(std::string_view name) { return {Kind::exact, std::string(name)}; }
  static TopicFilter prefix(std::string_view start) { return {Kind::prefix, std::string(start)}; }
  static TopicFilter suffix(std::string_view end) { return {Kind::suffix, std::string(end)}; }
  static TopicFilter any() { return {Kind::any, {}}; }

  // matches tells whether the topic `name` passes this filter.
  bool matches(std::string_view name) const noexcept {
    switch (kind) {
      case Kind::exact: return name == pattern;
      case Kind::prefix: return name.starts_with(pattern);
      case Kind::suffix: return name.ends_with(pattern);
      case Kind::any: return true;
    }
    return false;
  }
};

// PublishOptions say how one published event is delivered and kept.
struct PublishOptions {
  // priority: the event's own priority, at which it runs for every subscription (as
  // trigger(id, data, priority)); unset, each subscription runs it at its own priority.
  std::optional<Priority> priority{};
  // retention: how long late subscribers still get the event (zero: not retained).
  Duration retention = Duration::zero();
};

// SubscribeOptions say how a subscription's deliveries run (as EventOptions for on_event).
struct SubscribeOptions {
  Priority priority = Priority::normal;
  Executor exec = Executor::fresh_capsule;
  std::uint32_t queue_bound = kDefaultQueueBound;
  // on_lost hears, in order with the deliveries, of events dropped at the queue bound; without
  // it the loss is reported to Config::log. Optional.
  std::function<void(Lost)> on_lost{};
  // site is where the registration is made, named by Runtime::dump. Leave it: the default
  // captures the line that makes the options (the registering call when they are written there).
  SpawnSite site = SpawnSite::here();
};

namespace detail {

AEM_EXPORT Result<void> topic_check_filter(const TopicFilter& filter) noexcept;
AEM_EXPORT Result<EventId> arm_topic(const RegistrationSlot& slot, const HandlerOps* ops, TopicFilter& filter) noexcept;

}  // namespace detail

// publish delivers `data` (may be empty) as an event of topic `topic` to every subscription
// whose filter matches it, on every core, and returns how many subscriptions it reached: on
// this core, those it started or queued for (one at its queue bound counts too: it is told of
// the loss); on another core, those it sent the event to. The publisher never waits for a
// subscriber: another core's subscriptions get the event through that core's mailbox (one
// message per core), and one cancelled meanwhile does not get it. The same publisher's events reach a subscription in publish order when
// they have the same priority. Call from a capsule or an inline handler.
// Errors: errc::not_in_capsule, errc::invalid_argument (an empty name or one longer than
// kMaxTopicName, a negative retention, a bad priority), errc::out_of_memory,
// errc::shutting_down.
//
// Example:
//   aem::publish("orders.new", std::move(order), {.priority = aem::Priority::high});
AEM_EXPORT Result<std::size_t> publish(std::string_view topic, EventData data, PublishOptions options = {});

// subscribe registers `handler` for the events whose topic name `filter` matches, on the calling
// core, until cancelled: `handler(std::string_view topic, EventData)`,
// `handler(std::string_view topic, SharedEventData)`, `handler(EventData)`,
// `handler(SharedEventData)` or `handler()` (the name is valid while the handler runs). The
// unexpired retained events that match are delivered first, in publish order. Returns a
// registration id for aem::ctl and aem::cancel; aem::trigger refuses it (errc::invalid_argument):
// topic events come from publish. Call from a capsule or an inline handler.
// Errors: errc::not_in_capsule, errc::invalid_argument (a bad filter: a pattern empty or
// longer than kMaxTopicName, or non-empty for `any`; a bad priority, executor or queue bound),
// errc::resource_limit, errc::out_of_memory, errc::shutting_down.
//
// Example:
//   auto id = aem::subscribe(aem::TopicFilter::exact("config"), [](aem::EventData d) { apply(d); });
template <typename F>
Result<EventId> subscribe(TopicFilter filter, F&& handler, SubscribeOptions options = {}) {
  static_assert(detail::InvokeTopic::accepts<std::decay_t<F>>,
                "a topic handler is called with (std::string_view, EventData), (std::string_view, SharedEventData), "
                "EventData, SharedEventData or nothing");
  if (Result<void> checked = detail::topic_check_filter(filter); !checked) return checked.error();
  detail::RegistrationOptions reg{options.priority, options.exec, options.queue_bound, std::move(options.on_lost), {},
                                  SourceType::topic};
  reg.site = options.site.record();
  return detail::register_handler<detail::InvokeTopic>(
      std::forward<F>(handler), reg,
      [&filter](const detail::RegistrationSlot& slot, const detail::HandlerOps* ops) {
        return detail::arm_topic(slot, ops, filter);
      });
}

}  // namespace aem
