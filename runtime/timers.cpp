// timers.cpp — reserving registrations, after / every and cancel on the calling core's event
// table.
#include "runtime/core.hpp"
#include "runtime/runtime_impl.hpp"

#include <aem/cross_core.hpp>
#include <aem/timer.hpp>

namespace aem {
namespace detail {

Result<void> registration_reserve(std::size_t size, std::size_t align, Priority priority,
                                  RegistrationSlot& slot) noexcept {
  Core* core = Core::current_core();
  if (core == nullptr || core->current() == nullptr) return make_error_code(errc::not_in_capsule);
  if (!is_valid(priority)) return make_error_code(errc::invalid_argument);
  if (core->runtime().stopping()) return make_error_code(errc::shutting_down);
  auto registration = core->events()->reserve(size, align, priority);
  if (!registration) return registration.error();
  slot.registration = *registration;
  slot.storage = (*registration)->handler;
  return {};
}

void registration_unreserve(const RegistrationSlot& slot) noexcept {
  Core::current_core()->events()->unreserve(static_cast<Registration*>(slot.registration));
}

EventId timer_arm(const RegistrationSlot& slot, const HandlerOps* ops, TimePoint first, Duration period) noexcept {
  return Core::current_core()->events()->arm_timer(static_cast<Registration*>(slot.registration), ops, first, period);
}

}  // namespace detail

Result<void> cancel(EventId id) {
  detail::Core* core = detail::Core::current_core();
  if (core == nullptr || core->current() == nullptr) return make_error_code(errc::not_in_capsule);
  detail::RuntimeImpl& runtime = core->runtime();
  if (!id.valid() || id.tag() != runtime.tag() || id.core() >= runtime.core_count()) {
    return make_error_code(errc::foreign_event_id);
  }
  if (id.core() == core->index()) return core->events()->cancel(id);
  // The registration belongs to another core: cancel it there, and wait for the verdict.
  // Its errors are all aem::errc, so the value crosses alone.
  auto verdict = submit(id.core(), [id] { return detail::Core::current_core()->events()->cancel(id).error().value(); });
  if (!verdict) return verdict.error();
  if (*verdict != 0) return std::error_code(*verdict, error_category());
  return {};
}

}  // namespace aem
