// net/events.hpp — AEM-style socket registrations (on_accept, on_data, on_hangup, on_state:
// AEM's sockasync_accept / read / close / sock): a handler runs in a capsule each time the socket has an event, so a connection that
// is idle costs a registration (a 272-byte slot plus its handler, and a 136-byte source record
// shared by the registrations of the socket) and no stack.
//
// Lifetime: a registration does not own its socket. The socket must stay open while the
// registration lives: on_data and on_close registrations end by themselves when the stream
// ends; aem::cancel(id) (or aem::ctl(id).cancel(), event.hpp) ends any of them. When a
// registration ends, its handler is destroyed — so a handler that captures the stream (say a std::shared_ptr<TcpStream>) keeps it
// exactly as long as the registration needs it.
//
// Example (an echo server, no capsule per idle connection):
//   aem::on_accept(listener, [](aem::TcpStream accepted) {
//     auto stream = std::make_shared<aem::TcpStream>(std::move(accepted));
//     (void)aem::on_data(*stream, [stream](aem::EventData bytes) { (void)stream->write_all(bytes.bytes()); },
//                        {.exec = aem::Executor::keepalive});
//   });
#pragma once

#include <aem/detail/invoke.hpp>
#include <aem/detail/registration.hpp>
#include <aem/error.hpp>
#include <aem/event_data.hpp>
#include <aem/event_id.hpp>
#include <aem/executor.hpp>
#include <aem/export.hpp>
#include <aem/net/socket.hpp>
#include <aem/net/socket_state.hpp>
#include <aem/net/stream.hpp>
#include <aem/net/tcp.hpp>
#include <aem/net/unix.hpp>
#include <aem/priority.hpp>
#include <aem/result.hpp>
#include <aem/shared_event_data.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <poll.h>
#include <system_error>
#include <type_traits>
#include <utility>

namespace aem {

// SocketEventOptions say how a socket registration's activations run.
struct SocketEventOptions {
  Priority priority = Priority::normal;
  Executor exec = Executor::fresh_capsule;
  // queue_bound: activations kept waiting (disabled, keepalive capsule busy, no capsule free).
  // At the bound the source pauses — the bytes or connections wait in the kernel — and resumes
  // when the queue has drained to half of it: nothing is lost. The same pause holds a data
  // source while its stream's send() queue is past Config::send_queue_bound (a peer that sends
  // but does not read): the handler's answers are the other half of the connection's memory.
  std::uint32_t queue_bound = kDefaultQueueBound;
  // site is where the registration is made, named by Runtime::dump. Leave it: the default
  // captures the line that makes the options (the registering call when they are written there).
  SpawnSite site = SpawnSite::here();
};

// AcceptOptions add what on_accept reports besides connections.
struct AcceptOptions {
  Priority priority = Priority::normal;
  Executor exec = Executor::fresh_capsule;
  std::uint32_t queue_bound = kDefaultQueueBound;  // as SocketEventOptions::queue_bound
  // on_error runs (by the registration's executor, in order with the connections) when accepting
  // pauses because the process or system is out of descriptors or memory (std::errc::
  // too_many_files_open, too_many_files_open_in_system, not_enough_memory, no_buffer_space):
  // the registration backs off (1 ms, doubling up to 128 ms, while the shortage lasts) instead
  // of spinning, and resumes by itself. Also when the listener fails for good (then the
  // registration ends). Optional.
  std::function<void(std::error_code)> on_error{};
  // site is where the registration is made, named by Runtime::dump. Leave it: the default
  // captures the line that makes the options (the registering call when they are written there).
  SpawnSite site = SpawnSite::here();
};

// SocketEventStats count what the calling core's socket registrations went through.
struct SocketEventStats {
  std::uint64_t accept_backoffs = 0;      // accepts paused for want of descriptors or memory
  std::uint64_t receive_starvations = 0;  // receives paused for want of receive buffers
  std::size_t receive_buffers = 0;        // the core's receive buffers (0 before its first on_data)
  std::size_t receive_buffers_missing = 0;  // of which handed to handlers and not yet replaced
};

namespace this_core {
// socket_event_stats returns the calling core's counters (all zero on a plain thread).
AEM_EXPORT SocketEventStats socket_event_stats() noexcept;
}  // namespace this_core

namespace detail {

template <typename Invoke, typename F>
Result<EventId> register_socket(F&& handler, RegistrationOptions options, SourceSpec spec) {
  if (spec.fd < 0) return make_error_code(errc::invalid_argument);
  options.kind = spec.kind;
  return register_handler<Invoke>(std::forward<F>(handler), options,
                                  [&](const RegistrationSlot& slot, const HandlerOps* ops) {
                                    return arm_source(slot, ops, spec);
                                  });
}

inline RegistrationOptions socket_options(const SocketEventOptions& options) {
  RegistrationOptions reg{options.priority, options.exec, options.queue_bound, {}, {}};
  reg.site = options.site.record();
  return reg;
}

template <typename Invoke, typename Listener, typename F>
Result<EventId> register_accept(const Listener& listener, F&& handler, AcceptOptions options) {
  static_assert(Invoke::template accepts<std::decay_t<F>>, "an accept handler is called with the new stream");
  RegistrationOptions reg{options.priority, options.exec, options.queue_bound, {}, std::move(options.on_error)};
  reg.site = options.site.record();
  return register_socket<Invoke>(std::forward<F>(handler), std::move(reg), {SourceType::accept, listener.fd(), 0});
}

}  // namespace detail

// on_accept runs `handler(TcpStream)` for every connection `listener` accepts (one multishot
// accept), in a capsule on the calling core, until cancelled. The listener must stay open
// while registered. Call from a capsule.
// Errors: errc::not_in_capsule, errc::invalid_argument (a closed listener, a bad priority or
// executor), errc::resource_limit (the core's registration table is full), errc::shutting_down.
//
// Example:
//   auto id = aem::on_accept(listener, [](aem::TcpStream s) { serve(std::move(s)); });
template <typename F>
Result<EventId> on_accept(const TcpListener& listener, F&& handler, AcceptOptions options = {}) {
  return detail::register_accept<detail::InvokeAcceptTcp>(listener, std::forward<F>(handler), std::move(options));
}

// on_accept for Unix-domain listeners: `handler(UnixStream)`.
template <typename F>
Result<EventId> on_accept(const UnixListener& listener, F&& handler, AcceptOptions options = {}) {
  return detail::register_accept<detail::InvokeAcceptUnix>(listener, std::forward<F>(handler), std::move(options));
}

// on_data runs `handler(EventData)` (or `handler(SharedEventData)`) with the bytes of each
// receive on `stream`, in order of arrival. Several on_data registrations of one stream share
// one receive and each get every byte (SharedEventData handlers the same block; EventData
// handlers a copy each when there are several) (with Executor::keepalive the handlers also run one at a time, in that order). The
// bytes land in the core's shared receive buffers (Config::recv_buffers), so an idle stream
// holds none; small receives are copied into a right-sized arena block, large ones hand over
// the buffer itself. When the buffers run out, receiving pauses — the bytes wait in the
// socket — and resumes when buffers come back: nothing is lost. The registration ends by
// itself at the end of the stream or on an error that ends the connection (on_close says which).
// Call from a capsule. Errors: as on_accept, and errc::out_of_memory (no receive buffers).
template <typename F>
Result<EventId> on_data(const StreamSocket& stream, F&& handler, SocketEventOptions options = {}) {
  static_assert(std::is_invocable_v<std::decay_t<F>&, EventData> || std::is_invocable_v<std::decay_t<F>&, SharedEventData>,
                "a data handler is called with EventData or SharedEventData");
  return detail::register_socket<detail::InvokeBytes>(std::forward<F>(handler), detail::socket_options(options),
                                                      {SourceType::data, stream.fd(), 0});
}

// on_close runs `handler(std::error_code)` once, when the peer hangs up (an empty code: it shut
// down or closed its side, including a half-close) or the connection fails (the socket error,
// e.g. std::errc::connection_reset). Then the registration ends. Call from a capsule.
// Errors: as on_accept.
template <typename F>
Result<EventId> on_close(const Socket& socket, F&& handler, SocketEventOptions options = {}) {
  static_assert(std::is_invocable_v<std::decay_t<F>&, std::error_code>, "a close handler is called with an error_code");
  return detail::register_socket<detail::InvokeClose>(std::forward<F>(handler), detail::socket_options(options),
                                                      {SourceType::close, socket.fd(), 0});
}

// on_state runs `handler(SocketState)` each time `socket` becomes ready for one of `events`
// (poll bits: POLLIN, POLLOUT, POLLRDHUP, ...; POLLHUP and POLLERR are always reported), until
// cancelled or until the socket hangs up or fails (that last state is delivered, then the
// registration ends). Call from a capsule. Errors: as on_accept.
template <typename F>
Result<EventId> on_state(const Socket& socket, std::uint32_t events, F&& handler, SocketEventOptions options = {}) {
  static_assert(std::is_invocable_v<std::decay_t<F>&, SocketState>, "a state handler is called with SocketState");
  return detail::register_socket<detail::InvokeState>(std::forward<F>(handler), detail::socket_options(options),
                                                      {SourceType::state, socket.fd(), events});
}

}  // namespace aem
