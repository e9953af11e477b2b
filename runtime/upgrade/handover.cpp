// handover.cpp — Handover: claiming a predecessor's listeners, taking them by name, and ready().
// The offering side (the hand-over socket and the successors it serves) is handover_offer.cpp.
#include "base/log.hpp"
#include "runtime/upgrade/handover_channel.hpp"
#include "runtime/upgrade/handover_state.hpp"

#include <aem/error.hpp>
#include <aem/handover.hpp>
#include <aem/signal.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <utility>

namespace aem {
namespace {

std::string pid_text(const HandoverPeer& peer) { return "pid " + std::to_string(peer.pid); }

// check_new_name refuses a second listener under one name, and one listener too many.
Result<void> check_new_name(const Handover::State& state, std::string_view name) {
  if (name.size() > detail::kMaxListenerName || state.offered.size() >= kMaxHandoverListeners) {
    return make_error_code(handover_errc::too_many_listeners);
  }
  for (const detail::NamedListener& listener : state.offered) {
    if (listener.name == name) return make_error_code(handover_errc::duplicate_name);
  }
  return {};
}

// take_received takes the received listener named `name` out of the list (-1: none).
int take_received(Handover::State& state, std::string_view name) {
  auto it = std::find_if(state.received.begin(), state.received.end(),
                         [&](const detail::NamedListener& l) { return l.name == name; });
  if (it == state.received.end()) return -1;
  const int fd = it->fd;
  state.received.erase(it);
  return fd;
}

// add_offered keeps a reference of its own to `listener` under `name`.
Result<void> add_offered(Handover::State& state, std::string_view name, int fd) {
  const int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return errno_code(errno);
  try {
    state.offered.push_back({std::string(name), copy});
  } catch (...) {
    ::close(copy);
    return errc::out_of_memory;
  }
  return {};
}

// listener_for gives the listener named `name`: the received one when it fits `address` (the
// Listener type's adopt checks the kind), else a fresh one.
template <typename Listener>
Result<Listener> listener_for(Handover::State& state, std::string_view name, const SocketAddress& address,
                              const BindOptions& options) {
  std::lock_guard guard(state.lock);
  if (Result<void> fresh = check_new_name(state, name); !fresh) return fresh.error();
  Result<Listener> listener = errc::invalid_argument;
  if (const int fd = take_received(state, name); fd >= 0) {
    listener = Listener::adopt(fd);
    if (!listener) {
      ::close(fd);
      state.log("listener '" + std::string(name) + "' from the predecessor is not of the kind asked for: bound anew");
    } else if (Result<SocketAddress> local = listener->local_address();
               local && address.port() != 0 && !(*local == address)) {
      state.log("listener '" + std::string(name) + "' from the predecessor listens on " + local->to_string() +
                ", not " + address.to_string() + ": bound anew");
      (void)listener->close();
      listener = errc::invalid_argument;
    }
  }
  if (!listener) listener = Listener::bind(address, options);
  if (!listener) return listener.error();
  if (Result<void> kept = add_offered(state, name, listener->fd()); !kept) return kept.error();
  return listener;
}

}  // namespace

Handover::State::~State() {
  for (detail::NamedListener& l : received) ::close(l.fd);
  for (detail::NamedListener& l : offered) ::close(l.fd);
}

void Handover::State::log(std::string_view line) const {
  if (options.log) {
    options.log(line);
    return;
  }
  detail::log_text(LogLevel::info, "handover: " + std::string(line));
}

bool Handover::State::allowed(std::uint32_t uid) const noexcept {
  if (options.allowed_uids.empty()) return uid == own_uid;
  return std::find(options.allowed_uids.begin(), options.allowed_uids.end(), uid) != options.allowed_uids.end();
}

std::vector<detail::NamedListener> Handover::State::offered_copy() {
  std::lock_guard guard(lock);
  return offered;
}

void Handover::State::close_offered() noexcept {
  std::lock_guard guard(lock);
  for (detail::NamedListener& l : offered) ::close(std::exchange(l.fd, -1));
  offered.clear();
}

Result<Handover> Handover::claim(HandoverOptions options) {
  if (options.path.empty() || options.path.front() == '@') return make_error_code(handover_errc::not_a_file_path);
  Result<SocketAddress> address = SocketAddress::unix_path(options.path);
  if (!address) return address.error();
  auto state = std::make_shared<State>(std::move(options));
  const Duration timeout = state->options.timeout;
  Result<UnixStream> stream = UnixStream::connect(*address, timeout);
  if (!stream) {
    // Nobody offers: no file, or a file left by a process that is gone. A first start.
    if (stream.error() == std::errc::no_such_file_or_directory || stream.error() == std::errc::connection_refused) {
      return Handover(std::move(state));
    }
    return stream.error();
  }
  detail::HandoverChannel channel(std::move(*stream));
  Result<HandoverPeer> peer = channel.peer();
  if (!peer) return peer.error();
  if (!state->allowed(peer->uid)) {
    const std::string why = "user " + std::to_string(peer->uid) + " may not hand listeners to this process";
    channel.refuse(handover_errc::not_allowed, why, timeout);
    state->log("refused the listeners of " + pid_text(*peer) + ": " + why);
    return make_error_code(handover_errc::not_allowed);
  }
  if (Result<void> asked = channel.send(detail::FrameType::hello, {}, {}, timeout); !asked) return asked.error();
  Result<detail::Frame> answer = channel.receive(timeout);
  if (!answer) {
    state->log("no answer from " + pid_text(*peer) + ": " + answer.error().message());
    return answer.error();
  }
  if (answer->type == detail::FrameType::refused) {
    const detail::Refusal refusal = detail::decode_refusal(answer->payload);
    state->log(pid_text(*peer) + " refused to hand its listeners over: " + refusal.reason);
    return refusal.code;
  }
  if (answer->version != detail::kHandoverVersion) {
    state->log(pid_text(*peer) + " speaks version " + std::to_string(answer->version) + " of the protocol, not " +
               std::to_string(detail::kHandoverVersion));
    return make_error_code(handover_errc::version_mismatch);
  }
  if (answer->type != detail::FrameType::offer) return make_error_code(handover_errc::bad_protocol);
  Result<std::vector<detail::NamedListener>> listeners = detail::decode_offer(answer->payload, answer->fds);
  if (!listeners) {
    channel.refuse(handover_errc::bad_protocol, "the offer does not match its descriptors", timeout);
    return listeners.error();
  }
  std::string names;
  for (const detail::NamedListener& l : *listeners) names += (names.empty() ? "'" : ", '") + l.name + "'";
  state->log("received " + std::to_string(listeners->size()) + " listeners from " + pid_text(*peer) +
             (names.empty() ? "" : ": " + names));
  state->received = std::move(*listeners);
  state->predecessor = *peer;
  state->predecessor_channel = std::move(channel);
  return Handover(std::move(state));
}

Handover::Handover(std::shared_ptr<State> state) noexcept : state_(std::move(state)) {}
Handover::Handover(Handover&&) noexcept = default;

Handover& Handover::operator=(Handover&& other) noexcept {
  if (this != &other) {
    close();
    state_ = std::move(other.state_);
  }
  return *this;
}

Handover::~Handover() { close(); }

bool Handover::inherited() const noexcept { return state_ != nullptr && state_->predecessor.pid != 0; }

HandoverPeer Handover::predecessor() const noexcept { return state_ != nullptr ? state_->predecessor : HandoverPeer{}; }

std::vector<std::string> Handover::inherited_names() const {
  std::vector<std::string> names;
  if (state_ == nullptr) return names;
  std::lock_guard guard(state_->lock);
  for (const detail::NamedListener& l : state_->received) names.push_back(l.name);
  return names;
}

Result<TcpListener> Handover::tcp_listener(std::string_view name, const SocketAddress& address,
                                           const BindOptions& options) {
  if (state_ == nullptr) return errc::invalid_argument;
  return listener_for<TcpListener>(*state_, name, address, options);
}

Result<UnixListener> Handover::unix_listener(std::string_view name, const SocketAddress& address,
                                             const BindOptions& options) {
  if (state_ == nullptr) return errc::invalid_argument;
  return listener_for<UnixListener>(*state_, name, address, options);
}

Result<void> Handover::offer(std::string_view name, const ListenerSocket& listener) {
  if (state_ == nullptr) return errc::invalid_argument;
  if (listener.fd() < 0) return errno_code(EBADF);
  std::lock_guard guard(state_->lock);
  if (Result<void> fresh = check_new_name(*state_, name); !fresh) return fresh;
  return add_offered(*state_, name, listener.fd());
}

Result<void> Handover::ready() {
  if (state_ == nullptr) return errc::invalid_argument;
  State& state = *state_;
  if (state.ready_called) return errc::invalid_argument;
  state.ready_called = true;
  {
    std::lock_guard guard(state.lock);
    for (detail::NamedListener& l : state.received) {
      state.log("listener '" + l.name + "' from the predecessor is not used here: closed");
      ::close(l.fd);
    }
    state.received.clear();
  }
  if (state.predecessor_channel.is_open()) {
    const std::string predecessor = pid_text(state.predecessor);
    const Duration timeout = state.options.timeout;
    Result<void> told = state.predecessor_channel.send(detail::FrameType::ready, {}, {}, timeout);
    Result<detail::Frame> answer = told ? state.predecessor_channel.receive(timeout) : Result<detail::Frame>(told.error());
    if (answer && answer->type == detail::FrameType::done) {
      state.log(predecessor + " stops accepting: this process serves the listeners now");
    } else {
      // The listeners are ours whatever happened to the predecessor: serve on.
      state.log(predecessor + " did not confirm the hand-over (" +
                (answer ? std::string("an unexpected message") : answer.error().message()) +
                "): this process serves the listeners alone");
    }
    (void)state.predecessor_channel.close();
  }
  if (state.options.offer_signal == 0) return state.start_offering();
  // Armed by a signal: the first one starts offering, later ones are told it runs already.
  std::weak_ptr<State> armed = state_;
  Result<EventId> id = on_signal(state.options.offer_signal, [armed] {
    std::shared_ptr<State> target = armed.lock();
    if (target == nullptr || target->closed.load() || target->handed_over.load()) return;
    if (target->listener.is_open()) {
      target->log("asked to offer the listeners: offering already");
      return;
    }
    if (Result<void> offering = target->start_offering(); !offering) {
      target->log("cannot offer the listeners: " + offering.error().message());
    }
  });
  if (!id) return id.error();
  state.log("the listeners are offered on " + state.options.path + " once signal " +
            std::to_string(state.options.offer_signal) + " arrives");
  return {};
}

bool Handover::handed_over() const noexcept {
  return state_ != nullptr && state_->handed_over.load(std::memory_order_acquire);
}

void Handover::close() noexcept {
  if (state_ == nullptr || state_->closed.exchange(true)) return;
  (void)state_->listener.close();
  if (!state_->handed_over.load(std::memory_order_acquire)) state_->remove_file();
}

}  // namespace aem
