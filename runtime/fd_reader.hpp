// fd_reader.hpp — the runtime's own readers of an fd (a signalfd, an eventfd): a registration
// of the calling core's event table on the fd's readability (a multishot poll, so it works on
// both backends), whose handler runs inline on the dispatcher at critical priority. Used by
// signals.cpp and error_events.cpp; it counts among the core's registrations.
#pragma once

#include <aem/detail/registration.hpp>
#include <aem/event_id.hpp>
#include <aem/result.hpp>

#include <poll.h>

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
// Call from a capsule or an inline handler. Errors: as registration_reserve and source_arm.
template <typename R>
Result<EventId> arm_fd_reader(int fd, R&& reader) {
  RegistrationOptions options{Priority::critical, Executor::inline_handler, 64, {}, {}, SourceKind::state, true};
  return register_handler<InvokeReader>(std::forward<R>(reader), options,
                                        [fd](const RegistrationSlot& slot, const HandlerOps* ops) {
                                          return source_arm(slot, ops, SourceSpec{SourceKind::state, fd, POLLIN});
                                        });
}

}  // namespace aem::detail
