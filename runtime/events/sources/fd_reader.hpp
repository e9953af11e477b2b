// fd_reader.hpp — the runtime's own readers of an fd (a signalfd, an eventfd): a registration
// of the calling core's event table on the fd's readability (a multishot poll, so it works on
// both backends), whose handler runs inline on the dispatcher at critical priority. Used by
// signal.cpp and error_event.cpp (a PortReader each); it counts among the core's registrations.
#pragma once

#include <aem/detail/registration.hpp>
#include <aem/event_id.hpp>
#include <aem/result.hpp>

#include <poll.h>

#include <atomic>
#include <utility>

namespace aem::detail {

// InvokeReader calls an internal reader with the raw payload (value: the revents).
struct InvokeReader {
  static constexpr HandlerSignature signature = HandlerSignature::state;
  template <typename H>
  void operator()(H& handler, Payload& payload) const {
    handler(payload);
  }
};

// arm_fd_reader registers `reader(Payload&)` for the readability of `fd` on the calling core.
// Call from a capsule or an inline handler. Errors: as registration_reserve and arm_source.
template <typename R>
Result<EventId> arm_fd_reader(int fd, R&& reader) {
  RegistrationOptions options{Priority::critical, Executor::inline_handler, 64, {}, {}, SourceType::state, true};
  return register_handler<InvokeReader>(std::forward<R>(reader), options,
                                        [fd](const RegistrationSlot& slot, const HandlerOps* ops) {
                                          return arm_source(slot, ops, SourceSpec{SourceType::state, fd, POLLIN});
                                        });
}

// PortReader is the handler of a port's fd reader (a SignalPort's signalfd, an ErrorPort's
// eventfd): each readiness calls `Read(*port)`, which reads the fd until it is empty. The port
// has an `int fd` and an `std::atomic<bool> open`; the reader clears `open` when its registration
// goes (it was cancelled: the core stops), so that nobody counts on a port no one reads. Moved
// from, it leaves the port alone.
template <typename Port, void (*Read)(Port&) noexcept>
struct PortReader {
  Port* port;
  explicit PortReader(Port* p) noexcept : port(p) {}
  PortReader(PortReader&& other) noexcept : port(std::exchange(other.port, nullptr)) {}
  PortReader& operator=(PortReader&&) = delete;
  ~PortReader() {
    if (port != nullptr) port->open.store(false, std::memory_order_release);
  }
  void operator()(Payload&) noexcept { Read(*port); }
};

// arm_port_reader registers a PortReader of `port` for the readability of its fd on the calling
// core (arm_fd_reader).
template <auto Read, typename Port>
Result<EventId> arm_port_reader(Port* port) {
  return arm_fd_reader(port->fd, PortReader<Port, Read>(port));
}

}  // namespace aem::detail
