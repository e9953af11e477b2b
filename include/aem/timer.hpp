// timer.hpp — AEM-style timer registrations: a handler runs (in a fresh capsule by default) at
// the registration's priority each time the timer expires. aem::ctl (event.hpp) controls them.
#pragma once

#include <aem/detail/invoke.hpp>
#include <aem/detail/registration.hpp>
#include <aem/event_id.hpp>
#include <aem/executor.hpp>
#include <aem/export.hpp>
#include <aem/priority.hpp>
#include <aem/result.hpp>
#include <aem/time.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <new>
#include <type_traits>
#include <utility>

namespace aem {

// TimerOptions says how a timer's activations run.
struct TimerOptions {
  Priority priority = Priority::normal;
  Executor exec = Executor::fresh_capsule;
  // queue_bound: expiries kept waiting (no capsule free, keepalive busy, disabled) before the
  // next ones are dropped and reported through on_lost (a timer cannot wait).
  std::uint32_t queue_bound = kDefaultQueueBound;
  // on_lost hears, in order with the expiries, how many were dropped; without it the loss is
  // reported to Config::log. Optional.
  std::function<void(Lost)> on_lost{};
  // site is where the registration is made, named by Runtime::dump. Leave it: the default
  // captures the line that makes the options (the registering call when they are written there).
  SpawnSite site = SpawnSite::here();
};

namespace detail {

// arm_timer starts a reserved timer registration: first after `delay`, counted from the
// core's next reading of the clock (see after()), then every `period` if it is not zero.
AEM_EXPORT EventId arm_timer(const RegistrationSlot& slot, const HandlerOps* ops, Duration delay,
                             Duration period) noexcept;

template <typename F>
Result<EventId> register_timer(F&& handler, Duration delay, Duration period, TimerOptions& options) {
  static_assert(std::is_invocable_v<std::decay_t<F>&>, "a timer handler is called with no arguments");
  RegistrationOptions reg{options.priority, options.exec, options.queue_bound, std::move(options.on_lost), {}};
  reg.site = options.site.record();
  return register_handler<InvokeNone>(std::forward<F>(handler), reg,
                                      [&](const RegistrationSlot& slot, const HandlerOps* ops) -> Result<EventId> {
                                        return arm_timer(slot, ops, delay, period);
                                      });
}

}  // namespace detail

// after runs `handler` once, by options.exec on the calling core, when `delay` has passed (from
// then at most one Config::timer_tick late). Call from a capsule or an inline handler.
// The delay counts from the core's next reading of the clock, not from the call: reading it
// here would cost as much as the rest of the registration, and most timers (timeouts) are
// cancelled long before they fire. The core reads the clock on every turn of its loop and,
// while timers are armed, on every 8th switch between capsules, so the timer never fires
// early and is late only by the time the capsules run between the call and that reading.
// Errors: errc::not_in_capsule, errc::invalid_argument (bad priority), errc::resource_limit
// (the registration table is full: 16M per core), errc::shutting_down.
//
// Example:
//   auto id = aem::after(500ms, [] { log("half a second"); });
template <typename F>
Result<EventId> after(Duration delay, F&& handler, TimerOptions options = {}) {
  return detail::register_timer(std::forward<F>(handler), delay, Duration::zero(), options);
}

// every runs `handler` each `period` (first after one period, counted as after() counts its
// delay) until cancelled. Expiries are never skipped: if the core fell behind, the missed
// activations run back to back (beyond the queue bound they are reported through on_lost).
// Errors: as after(), and errc::invalid_argument for a period <= 0.
template <typename F>
Result<EventId> every(Duration period, F&& handler, TimerOptions options = {}) {
  if (period <= Duration::zero()) return make_error_code(errc::invalid_argument);
  return detail::register_timer(std::forward<F>(handler), period, period, options);
}


}  // namespace aem
