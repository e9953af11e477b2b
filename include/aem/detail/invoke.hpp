// detail/invoke.hpp — the adapters that call a handler with what its source's payload carries,
// one per HandlerSignature, and the table of them a replacement handler is checked against.
#pragma once

#include <aem/detail/registration.hpp>
#include <aem/event_data.hpp>
#include <aem/export.hpp>
#include <aem/net/socket_state.hpp>
#include <aem/net/tcp.hpp>
#include <aem/net/unix.hpp>
#include <aem/shared_event_data.hpp>

#include <array>
#include <functional>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

namespace aem::detail {

// copy_shared returns a private copy of `shared` from the calling core's arena, for a handler
// that takes EventData when the activation fanned out. Throws std::system_error when the arena
// cannot supply one.
AEM_EXPORT EventData copy_shared(const SharedEventData& shared);
// share_data wraps `data` for a handler that takes SharedEventData. Throws std::system_error
// when the arena cannot supply the shared record.
AEM_EXPORT SharedEventData share_data(EventData&& data);

// take_data hands a payload's bytes to a handler that takes EventData: its own block when the
// activation reached one registration (the common case: nothing is copied), else a copy.
inline EventData take_data(Payload& payload) {
  if (payload.shared) return copy_shared(payload.shared);
  return std::move(payload.data);
}

// take_shared hands a payload's bytes to a handler that takes SharedEventData.
inline SharedEventData take_shared(Payload& payload) {
  if (payload.shared || !payload.data) return std::move(payload.shared);
  return share_data(std::move(payload.data));
}

struct InvokeNone {
  static constexpr HandlerSignature signature = HandlerSignature::none;
  template <typename H>
  static constexpr bool accepts = std::is_invocable_v<H&>;
  template <typename H>
  void operator()(H& handler, Payload&) const {
    std::invoke(handler);
  }
};

struct InvokeBytes {
  static constexpr HandlerSignature signature = HandlerSignature::bytes;
  template <typename H>
  static constexpr bool accepts =
      std::is_invocable_v<H&, EventData> || std::is_invocable_v<H&, SharedEventData> || std::is_invocable_v<H&>;
  template <typename H>
  void operator()(H& handler, Payload& payload) const {
    if constexpr (std::is_invocable_v<H&, EventData>) {
      std::invoke(handler, take_data(payload));
    } else if constexpr (std::is_invocable_v<H&, SharedEventData>) {
      std::invoke(handler, take_shared(payload));
    } else {
      std::invoke(handler);
    }
  }
};

template <typename Stream, HandlerSignature Signature>
struct InvokeAccept {
  static constexpr HandlerSignature signature = Signature;
  template <typename H>
  static constexpr bool accepts = std::is_invocable_v<H&, Stream>;
  template <typename H>
  void operator()(H& handler, Payload& payload) const {
    std::invoke(handler, Stream(std::exchange(payload.value, -1)));
  }
};
using InvokeAcceptTcp = InvokeAccept<TcpStream, HandlerSignature::accept_tcp>;
using InvokeAcceptUnix = InvokeAccept<UnixStream, HandlerSignature::accept_unix>;

// InvokeTopic calls a topic subscriber with the topic's name (valid while the handler runs)
// and the bytes, or with the bytes alone like InvokeBytes.
struct InvokeTopic {
  static constexpr HandlerSignature signature = HandlerSignature::topic;
  template <typename H>
  static constexpr bool accepts = std::is_invocable_v<H&, std::string_view, EventData> ||
                                  std::is_invocable_v<H&, std::string_view, SharedEventData> ||
                                  InvokeBytes::accepts<H>;
  template <typename H>
  void operator()(H& handler, Payload& payload) const {
    if constexpr (std::is_invocable_v<H&, std::string_view, EventData>) {
      std::invoke(handler, name_of(payload), take_data(payload));
    } else if constexpr (std::is_invocable_v<H&, std::string_view, SharedEventData>) {
      std::invoke(handler, name_of(payload), take_shared(payload));
    } else {
      InvokeBytes{}(handler, payload);
    }
  }
  static std::string_view name_of(const Payload& payload) noexcept {
    return {reinterpret_cast<const char*>(payload.topic.data()), payload.topic.size()};
  }
};

struct InvokeClose {
  static constexpr HandlerSignature signature = HandlerSignature::close;
  template <typename H>
  static constexpr bool accepts = std::is_invocable_v<H&, std::error_code>;
  template <typename H>
  void operator()(H& handler, Payload& payload) const {
    std::invoke(handler,
                payload.error != 0 ? std::error_code(payload.error, std::generic_category()) : std::error_code());
  }
};

struct InvokeState {
  static constexpr HandlerSignature signature = HandlerSignature::state;
  template <typename H>
  static constexpr bool accepts = std::is_invocable_v<H&, SocketState>;
  template <typename H>
  void operator()(H& handler, Payload& payload) const {
    SocketState state;
    if (payload.value >= 0) state.revents = static_cast<std::uint32_t>(payload.value);
    if (payload.error != 0) state.error = std::error_code(payload.error, std::generic_category());
    std::invoke(handler, state);
  }
};

// Replacement is a handler built by the caller of replace_handler, to be moved into its
// registration on the registration's core: `ops[s]` are its operations for signature s (null
// where it cannot be called that way).
struct Replacement {
  std::array<const HandlerOps*, static_cast<std::size_t>(HandlerSignature::count_)> ops{};
  void* source = nullptr;  // the handler, on the caller's stack
  std::size_t size = 0;
  std::size_t align = 0;
  void (*move_into)(void* storage, void* source) = nullptr;  // may throw what H's move throws
};

template <typename Invoke, typename H>
constexpr void offer(Replacement& r) {
  if constexpr (Invoke::template accepts<H>) {
    r.ops[static_cast<std::size_t>(Invoke::signature)] = &handler_ops<H, Invoke>;
  }
}

// make_replacement describes `handler` for every signature it can be called with.
template <typename H>
Replacement make_replacement(H& handler) {
  Replacement r;
  offer<InvokeNone, H>(r);
  offer<InvokeBytes, H>(r);
  offer<InvokeAcceptTcp, H>(r);
  offer<InvokeAcceptUnix, H>(r);
  offer<InvokeClose, H>(r);
  offer<InvokeState, H>(r);
  offer<InvokeTopic, H>(r);
  r.source = &handler;
  r.size = sizeof(H);
  r.align = alignof(H);
  r.move_into = [](void* storage, void* source) { new (storage) H(std::move(*static_cast<H*>(source))); };
  return r;
}

}  // namespace aem::detail
