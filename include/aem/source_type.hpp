// source_type.hpp — SourceType: what activates a registration, and what its activations carry.
#pragma once

#include <cstdint>

namespace aem {

// SourceType names what activates a registration (EventInfo::source, Policy::allowed_sources).
enum class SourceType : std::uint8_t {
  timer,   // aem::after / aem::every: the timer wheel
  accept,  // aem::on_accept: one multishot accept, the new socket per activation
  data,    // aem::on_data: one multishot receive into the core's buffer ring, the bytes
  close,   // aem::on_close: one poll for the peer's hang-up or an error
  state,   // aem::on_state: a multishot poll, the readiness events
  user,    // aem::on_event + aem::trigger: the bytes given to trigger
  topic,   // aem::subscribe: a publish on a matching topic, its bytes and the topic's name
  signal,  // aem::on_signal: a signal through the core's signalfd
  error,   // aem::on_error: a subsystem error (arena, accept back-off, completion queue)
};

}  // namespace aem
