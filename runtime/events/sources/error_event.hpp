// error_event.hpp — where the runtime's subsystems raise the errors aem::on_error hears
// (error_event.cpp).
#pragma once

#include <aem/arena.hpp>
#include <aem/error_event.hpp>

#include <cstdint>

namespace aem::detail {

class Core;

// raise_subsystem_error hands an error of `subsystem` on `core` (`error`: an errno; `count`:
// that core's running count of them) to every core with on_error registrations. Call on
// `core`'s thread, from anywhere there (dispatcher, capsule, arena callback): it never blocks
// and allocates nothing; errors that find a core's buffer full are coalesced.
void raise_subsystem_error(Core& core, Subsystem subsystem, int error, std::uint64_t count) noexcept;

// with_pressure_events returns `config` with an on_pressure that raises Subsystem::arena
// errors of `core` and then calls the application's own on_pressure, if any.
ArenaConfig with_pressure_events(Core& core, const ArenaConfig& config);

}  // namespace aem::detail
