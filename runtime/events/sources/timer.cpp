// timer.cpp — arming after / every registrations on the calling core's event table.
#include "runtime/events/event_table.hpp"

#include <aem/timer.hpp>

namespace aem::detail {

EventId arm_timer(const RegistrationSlot& slot, const HandlerOps* ops, TimePoint first, Duration period) noexcept {
  return event_table(Core::current_core())->arm_timer(static_cast<Registration*>(slot.registration), ops, first, period);
}

}  // namespace aem::detail
