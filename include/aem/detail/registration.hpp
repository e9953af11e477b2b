// registration.hpp — the type-erased half of every registration (timers, sockets, later the
// other sources): a handler constructed in a slot of the calling core's event table, invoked
// with the payload of each activation.
#pragma once

#include <aem/event_data.hpp>
#include <aem/event_id.hpp>
#include <aem/executor.hpp>
#include <aem/export.hpp>
#include <aem/priority.hpp>
#include <aem/result.hpp>

#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>

namespace aem::detail {

// Payload is what one activation carries to its handler.
struct Payload {
  EventData data;  // on_data: the bytes received
  int value = -1;  // on_accept: the accepted socket (the payload owns it); poll sources: revents
  int error = 0;   // an errno the source reports with this activation; 0: none
};

// HandlerOps are the type-erased operations on a registration's handler.
struct HandlerOps {
  void (*invoke)(void* handler, Payload& payload);
  void (*destroy)(void* handler) noexcept;
};

// handler_ops<H, Invoke> calls Invoke{}(handler, payload): each source adapts the payload to
// the signature its public API promises.
template <typename H, typename Invoke>
inline constexpr HandlerOps handler_ops{
    [](void* h, Payload& payload) { Invoke{}(*static_cast<H*>(h), payload); },
    [](void* h) noexcept { static_cast<H*>(h)->~H(); },
};

// SourceKind names what activates a registration.
enum class SourceKind : std::uint8_t {
  timer,
  accept,  // multishot accept: payload.value = the new socket
  data,    // multishot receive into the core's buffer ring: payload.data
  hangup,  // one poll for POLLRDHUP/POLLHUP/POLLERR: payload.value = revents, payload.error
  state,   // multishot poll: payload.value = revents
};

// SourceSpec describes a socket source to arm.
struct SourceSpec {
  SourceKind kind = SourceKind::accept;
  int fd = -1;
  std::uint32_t events = 0;  // poll mask (state)
  Executor exec = Executor::fresh_capsule;
};

// RegistrationSlot is a reservation in the calling core's event table: `storage` receives the
// handler, then the source's arm function starts it.
struct RegistrationSlot {
  void* registration = nullptr;
  void* storage = nullptr;
};

// registration_reserve reserves a slot with room for a handler of `size`/`align` on the calling
// capsule's core. Errors: errc::not_in_capsule, errc::invalid_argument (bad priority),
// errc::shutting_down, errc::resource_limit (16M registrations per core), errc::out_of_memory.
AEM_EXPORT Result<void> registration_reserve(std::size_t size, std::size_t align, Priority priority,
                                             RegistrationSlot& slot) noexcept;
// registration_unreserve gives back a slot whose handler was never constructed.
AEM_EXPORT void registration_unreserve(const RegistrationSlot& slot) noexcept;

// source_arm starts the socket source `spec` for a reserved slot whose handler is constructed
// and returns its id; on error the handler is destroyed and the slot freed.
// Errors: errc::invalid_argument (bad fd or executor), errc::out_of_memory (no receive
// buffers), errc::shutting_down, the errno of registering the buffer ring.
AEM_EXPORT Result<EventId> source_arm(const RegistrationSlot& slot, const HandlerOps* ops, const SourceSpec& spec) noexcept;

// register_handler reserves a slot, constructs the handler H from `handler` in it and calls
// `arm(slot, ops)`, which starts the source and returns its id (or an error, after which the
// handler has been destroyed and the slot freed).
template <typename Invoke, typename F, typename Arm>
Result<EventId> register_handler(F&& handler, Priority priority, Arm&& arm) {
  using H = std::decay_t<F>;
  RegistrationSlot slot;
  if (Result<void> reserved = registration_reserve(sizeof(H), alignof(H), priority, slot); !reserved) {
    return reserved.error();
  }
  try {
    new (slot.storage) H(std::forward<F>(handler));
  } catch (...) {
    registration_unreserve(slot);
    throw;
  }
  return arm(slot, &handler_ops<H, Invoke>);
}

}  // namespace aem::detail
