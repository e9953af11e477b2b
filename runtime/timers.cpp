// timers.cpp — arming after / every registrations on the calling core's event table.
#include "runtime/core.hpp"

#include <aem/timer.hpp>

namespace aem::detail {

EventId timer_arm(const RegistrationSlot& slot, const HandlerOps* ops, TimePoint first, Duration period) noexcept {
  return Core::current_core()->events()->arm_timer(static_cast<Registration*>(slot.registration), ops, first, period);
}

}  // namespace aem::detail
