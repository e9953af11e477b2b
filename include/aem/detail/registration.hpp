// registration.hpp — the type-erased half of every registration (timers, sockets, triggered
// events): a handler constructed in a slot of the calling core's event table, invoked with the
// payload of each activation.
#pragma once

#include <aem/event_data.hpp>
#include <aem/event_id.hpp>
#include <aem/source_type.hpp>
#include <aem/executor.hpp>
#include <aem/export.hpp>
#include <aem/priority.hpp>
#include <aem/result.hpp>
#include <aem/shared_event_data.hpp>
#include <aem/spawn_site.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <new>
#include <system_error>
#include <type_traits>
#include <utility>

namespace aem::detail {

// PayloadKind says what a queued payload is: an activation, or a notice the table adds in
// order with them.
enum class PayloadKind : std::uint8_t {
  activation,
  lost,     // `lost` activations were dropped here (the registration's on_lost hears of it)
  timeout,  // the registration's timeout expired (its timeout handler runs)
  error,    // the source reports `error` (the registration's on_error hears of it)
};

// kOwnPriority in Payload::priority: the activation runs at its registration's priority.
inline constexpr std::uint8_t kOwnPriority = 0xff;

// Payload is what one activation carries to its handler.
struct Payload {
  EventData data;          // on_data / triggered events: the bytes (sole owner)
  SharedEventData shared;  // the same, when the activation fanned out to several registrations
  SharedEventData topic;   // topic deliveries: the topic's name
  int value = -1;          // on_accept: the accepted socket (the payload owns it); polls: revents
  int error = 0;           // an errno the source reports with this activation; 0: none
  std::uint32_t lost = 0;  // PayloadKind::lost: how many were dropped
  PayloadKind kind = PayloadKind::activation;
  std::uint8_t priority = kOwnPriority;  // a triggered activation's own priority
};

// HandlerSignature names the parameter list a handler is called with; a replacement handler
// must be callable the same way.
enum class HandlerSignature : std::uint8_t {
  none,         // timers: handler()
  bytes,        // on_data, on_event: handler(EventData) or handler(SharedEventData) (on_event: or ())
  accept_tcp,   // handler(TcpStream)
  accept_unix,  // handler(UnixStream)
  close,        // handler(std::error_code)
  state,        // handler(SocketState)
  topic,        // subscribe: handler(std::string_view topic, EventData | SharedEventData), or as bytes
  signal,       // handler(const SignalInfo&) or handler()
  subsystem_error,  // handler(const SubsystemError&) or handler()
  count_,
};

// HandlerOps are the type-erased operations on a registration's handler.
struct HandlerOps {
  void (*invoke)(void* handler, Payload& payload);
  void (*destroy)(void* handler) noexcept;
  HandlerSignature signature;
};

// handler_ops<H, Invoke> calls Invoke{}(handler, payload): each source adapts the payload to
// the signature its public API promises.
template <typename H, typename Invoke>
inline constexpr HandlerOps handler_ops{
    [](void* h, Payload& payload) { Invoke{}(*static_cast<H*>(h), payload); },
    [](void* h) noexcept { static_cast<H*>(h)->~H(); },
    Invoke::signature,
};

// SourceSpec describes a socket source to arm.
struct SourceSpec {
  SourceType kind = SourceType::accept;
  int fd = -1;
  std::uint32_t events = 0;  // poll mask (state)
};

// RegistrationOptions are what every registration sets besides its handler and source.
struct RegistrationOptions {
  Priority priority = Priority::normal;
  Executor exec = Executor::fresh_capsule;
  std::uint32_t queue_bound = kDefaultQueueBound;  // >= 1
  std::function<void(Lost)> on_lost{};             // optional
  std::function<void(std::error_code)> on_error{};  // optional: errors the source reports
  SourceType kind = SourceType::timer;              // the source it will be armed with (Policy)
  // internal: the runtime's own registration (a core's signal or error reader), shared by all
  // groups: in no group, not subject to Policy, not counted against it.
  bool internal = false;
  // site is where the registration was made (its options' SpawnSite), named by Runtime::dump.
  const SiteRecord* site = nullptr;
};

// RegistrationSlot is a reservation in the calling core's event table: `storage` receives the
// handler, then the source's arm function starts it.
struct RegistrationSlot {
  void* registration = nullptr;
  void* storage = nullptr;
};

// registration_reserve reserves a slot with room for a handler of `size`/`align` on the calling
// core (from a capsule or an inline handler), taking over the callbacks of `options`.
// Errors: errc::not_in_capsule, errc::invalid_argument (bad priority, executor or a zero queue
// bound), errc::shutting_down, errc::resource_limit (16M registrations per core),
// errc::out_of_memory.
AEM_EXPORT Result<void> registration_reserve(std::size_t size, std::size_t align, RegistrationOptions& options,
                                             RegistrationSlot& slot) noexcept;
// registration_unreserve gives back a slot whose handler was never constructed.
AEM_EXPORT void registration_unreserve(const RegistrationSlot& slot) noexcept;

// arm_source starts the socket source `spec` for a reserved slot whose handler is constructed
// and returns its id; on error the handler is destroyed and the slot freed. Registrations of
// one stream's data, hang-up or (same mask) state share one source and each get every event.
// Errors: errc::invalid_argument (bad fd), errc::out_of_memory (no receive buffers or source
// records), errc::shutting_down, the errno of registering the buffer ring.
AEM_EXPORT Result<EventId> arm_source(const RegistrationSlot& slot, const HandlerOps* ops, const SourceSpec& spec) noexcept;

// register_handler reserves a slot, constructs the handler H from `handler` in it and calls
// `arm(slot, ops)`, which starts the source and returns its id (or an error, after which the
// handler has been destroyed and the slot freed).
template <typename Invoke, typename F, typename Arm>
Result<EventId> register_handler(F&& handler, RegistrationOptions& options, Arm&& arm) {
  using H = std::decay_t<F>;
  RegistrationSlot slot;
  if (Result<void> reserved = registration_reserve(sizeof(H), alignof(H), options, slot); !reserved) {
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
