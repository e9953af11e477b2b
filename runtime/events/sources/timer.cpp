// timer.cpp — arming after / every registrations on the calling core's event table.
#include "runtime/events/event_table.hpp"

#include <aem/timer.hpp>

namespace aem::detail {

// Defined here, `inline`, next to its only caller: a member defined out of its class in a
// -fPIC library is otherwise always a call, which every timer would pay.
inline EventId EventTable::arm_timer(Registration* r, const HandlerOps* ops, Duration delay, Duration period) noexcept {
  r->ops = ops;
  r->period = period;
  r->timer.fire = &on_timer;
  core_.wheel().arm_after(r->timer.node, delay);
  return id_of(r);
}

EventId arm_timer(const RegistrationSlot& slot, const HandlerOps* ops, Duration delay, Duration period) noexcept {
  return event_table(Core::current_core())->arm_timer(static_cast<Registration*>(slot.registration), ops, delay, period);
}

}  // namespace aem::detail
