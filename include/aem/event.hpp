// event.hpp — registrations under control (AEM's evctl): aem::ctl(id) enables, disables,
// re-prioritises, filters, times out, hot-swaps, inspects and cancels any registration (timers,
// socket events, triggered events), from a capsule on any core; and user-triggered events,
// on_event + trigger, the source topics build on.
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
#include <aem/source_type.hpp>
#include <aem/time.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <system_error>
#include <type_traits>
#include <utility>

namespace aem {

// EventState is where a registration stands.
enum class EventState : std::uint8_t {
  active,    // activations start as they come
  disabled,  // activations are queued (up to the queue bound) until enable()
  ended,     // the source will not activate again; queued activations are still delivered
};

// EventInfo is a snapshot of one registration.
struct EventInfo {
  SourceType source = SourceType::user;
  Priority priority = Priority::normal;
  Executor exec = Executor::fresh_capsule;
  EventState state = EventState::active;
  unsigned core = 0;
  std::uint32_t queue_bound = 0;
  std::uint32_t running = 0;  // handlers started and not finished
  std::uint32_t sharing = 1;  // registrations the source fans out to (this one included)
  // throttled: its queue reached the bound, so its source is paused (a source that can wait:
  // sockets) until the queue has drained to half of it.
  bool throttled = false;
  // activated = delivered + queued + filtered + lost in every snapshot, also one a handler
  // takes while it serves an activation (that one counts as delivered).
  std::uint64_t activated = 0;  // activations that reached the registration
  std::uint64_t delivered = 0;  // of which handed to its handler
  std::uint64_t queued = 0;     // of which waiting now: queued, or in a capsule not started yet
  std::uint64_t filtered = 0;   // of which dropped by the filter
  std::uint64_t lost = 0;       // of which dropped at the queue bound (reported through Lost)
  std::uint64_t blocked = 0;    // inline handler: suspensions refused (errc::inline_handler_blocked)
};

// ActivationView is what a filter sees of one activation.
struct ActivationView {
  std::span<const std::byte> data;  // on_data, on_event: the bytes
  int value = -1;                   // on_accept: the new socket's fd; on_state, on_close: revents
  std::error_code error;            // the error the source reports, if any
};

// EventFilter decides whether an activation reaches the handler (true) or is dropped (false,
// counted in EventInfo::filtered; an accepted socket is closed). It runs on the dispatcher,
// for every activation: it must be quick and must not block (like Executor::inline_handler).
using EventFilter = std::function<bool(const ActivationView&)>;

namespace detail {

enum class CtlOp : std::uint8_t { enable, disable, set_priority, cancel };

AEM_EXPORT Result<void> ctl_simple(EventId id, CtlOp op, Priority priority);
AEM_EXPORT Result<void> ctl_set_filter(EventId id, EventFilter& filter);
AEM_EXPORT Result<void> ctl_set_timeout(EventId id, Duration timeout, std::function<void()>& handler);
AEM_EXPORT Result<void> ctl_replace_handler(EventId id, const Replacement& replacement);
AEM_EXPORT Result<EventInfo> ctl_info(EventId id);
AEM_EXPORT Result<EventId> arm_user(const RegistrationSlot& slot, const HandlerOps* ops) noexcept;
AEM_EXPORT Result<void> trigger_event(EventId id, EventData& data, std::uint8_t priority);

}  // namespace detail

// EventControl controls one registration (aem::ctl). Every operation may be called from a
// capsule on any core — an id of another core is carried out there, the caller's capsule
// waiting — and from an inline handler for ids of its own core. Errors common to all:
// errc::stale_event_id (cancelled, or over: a fired one-shot timer, an ended stream whose
// activations are all delivered), errc::foreign_event_id (another runtime's id, or an invalid
// one), errc::not_in_capsule, errc::inline_handler_blocked (another core's id from an inline
// handler), errc::shutting_down.
//
// Example:
//   auto id = aem::on_data(stream, handle, {.exec = aem::Executor::keepalive});
//   aem::ctl(*id).disable();                     // bytes wait (up to the queue bound)
//   aem::ctl(*id).replace_handler(handle_v2);    // upgrade without a restart
//   aem::ctl(*id).enable();                      // the waiting bytes go to handle_v2
//   aem::EventInfo info = aem::ctl(*id).info().value();
class EventControl {
 public:
  explicit EventControl(EventId id) noexcept : id_(id) {}
  EventId id() const noexcept { return id_; }

  // enable lets activations start again; those queued while disabled start now, in order.
  Result<void> enable() const { return detail::ctl_simple(id_, detail::CtlOp::enable, Priority::normal); }
  // disable keeps activations from starting: they are queued, up to the registration's queue
  // bound (then sources that can wait pause, the others report Lost). Running handlers finish.
  Result<void> disable() const { return detail::ctl_simple(id_, detail::CtlOp::disable, Priority::normal); }
  // set_priority changes the priority of the registration's activations, including those
  // already queued, and of its keepalive capsule. Errors: also errc::invalid_argument.
  Result<void> set_priority(Priority priority) const { return detail::ctl_simple(id_, detail::CtlOp::set_priority, priority); }
  // set_filter installs `filter` (an empty one removes it): activations it refuses are dropped
  // and counted (EventInfo::filtered).
  Result<void> set_filter(EventFilter filter) const { return detail::ctl_set_filter(id_, filter); }
  // set_timeout runs `handler()` — by the registration's executor, in order with its
  // activations — each time `timeout` passes without an activation reaching the registration
  // (so every `timeout` while it stays silent). A timeout <= 0 removes it.
  template <typename F>
  Result<void> set_timeout(Duration timeout, F&& handler) const {
    static_assert(std::is_invocable_v<std::decay_t<F>&>, "a timeout handler is called with no arguments");
    std::function<void()> fn(std::forward<F>(handler));
    return detail::ctl_set_timeout(id_, timeout, fn);
  }
  // replace_handler swaps the registration's handler atomically: the next activation to start
  // runs `handler`; none is lost or run twice; one that runs already finishes on the old
  // handler, which is destroyed after it. `handler` must take what the source passes (as at
  // registration). Errors: also errc::invalid_argument (it cannot be called that way).
  template <typename F>
  Result<void> replace_handler(F&& handler) const {
    std::decay_t<F> local(std::forward<F>(handler));
    return detail::ctl_replace_handler(id_, detail::make_replacement(local));
  }
  // info returns a snapshot of the registration.
  Result<EventInfo> info() const { return detail::ctl_info(id_); }
  // cancel ends the registration (as aem::cancel): its source is stopped once no other
  // registration shares it (a multishot operation is cancelled); queued activations are
  // dropped; a handler that runs already finishes.
  Result<void> cancel() const { return detail::ctl_simple(id_, detail::CtlOp::cancel, Priority::normal); }

 private:
  EventId id_;
};

// ctl returns the control of registration `id` (checked when an operation is called).
inline EventControl ctl(EventId id) noexcept { return EventControl(id); }

// EventOptions say how a triggered event's activations run.
struct EventOptions {
  Priority priority = Priority::normal;
  Executor exec = Executor::fresh_capsule;
  std::uint32_t queue_bound = kDefaultQueueBound;
  // on_lost hears, in order with the activations, of triggers dropped at the queue bound;
  // without it the loss is reported to Config::log. Optional.
  std::function<void(Lost)> on_lost{};
  // site is where the registration is made, named by Runtime::dump. Leave it: the default
  // captures the line that makes the options (the registering call when they are written there).
  SpawnSite site = SpawnSite::here();
};

// on_event registers `handler` for an event the application activates itself with trigger():
// `handler(EventData)`, `handler(SharedEventData)` or `handler()`. Lives on the calling core
// until cancelled. Call from a capsule or an inline handler.
// Errors: errc::not_in_capsule, errc::invalid_argument (bad priority, executor, queue bound),
// errc::resource_limit, errc::shutting_down.
//
// Example:
//   auto id = aem::on_event([](aem::EventData d) { consume(d.bytes()); }, {.priority = aem::Priority::high});
//   aem::trigger(*id, std::move(bytes));
template <typename F>
Result<EventId> on_event(F&& handler, EventOptions options = {}) {
  static_assert(detail::InvokeBytes::accepts<std::decay_t<F>>,
                "an event handler is called with EventData, SharedEventData or nothing");
  detail::RegistrationOptions reg{options.priority, options.exec, options.queue_bound, std::move(options.on_lost), {}};
  reg.kind = SourceType::user;
  reg.site = options.site.record();
  return detail::register_handler<detail::InvokeBytes>(std::forward<F>(handler), reg,
                                                       [](const detail::RegistrationSlot& slot, const detail::HandlerOps* ops) {
                                                         return detail::arm_user(slot, ops);
                                                       });
}

// trigger activates the event `id` with `data` (may be empty). On the caller's core the
// activation is queued or started at once and trigger returns; for another core's id the
// caller's capsule waits until that core has taken it. A registration at its queue bound drops
// the activation and tells on_lost (trigger still succeeds: the publisher is not held up).
// Call from a capsule, or from an inline handler for ids of its core. Errors: as ctl().
AEM_EXPORT Result<void> trigger(EventId id, EventData data = {});
// trigger with the activation's own `priority` (instead of the registration's): a keepalive
// capsule busy with earlier activations runs at this priority until it has served this one.
AEM_EXPORT Result<void> trigger(EventId id, EventData data, Priority priority);

namespace this_core {

// EventStats count what the calling core's event table went through.
struct EventStats {
  std::uint64_t inline_blocked = 0;  // suspensions refused in inline handlers
  std::uint64_t throttles = 0;       // sources paused because a registration's queue was full
  std::uint64_t lost = 0;            // activations dropped at a queue bound
  std::size_t registrations = 0;     // live registrations
};

// event_stats returns the calling core's counters (all zero on a plain thread).
AEM_EXPORT EventStats event_stats() noexcept;

}  // namespace this_core
}  // namespace aem
