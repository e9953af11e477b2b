// handover.hpp — aem::Handover: replace a server's program without closing its ports. The
// running process offers its listening sockets on a Unix socket path; a new process started
// with the same path receives the same kernel sockets (SCM_RIGHTS), matched by name, and
// accepts on them while the old one drains. Nothing already in a listener's accept queue is
// lost: the queue belongs to the shared socket, and the new process accepts from it.
#pragma once

#include <aem/export.hpp>
#include <aem/net/address.hpp>
#include <aem/net/listener.hpp>
#include <aem/net/socket.hpp>
#include <aem/net/tcp.hpp>
#include <aem/net/unix.hpp>
#include <aem/result.hpp>
#include <aem/time.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

namespace aem {

// handover_errc lists why a hand-over was refused or failed, as error codes of
// handover_category() ("aem.handover"). A refusal reaches both sides: the refused side gets
// the code the other side sent, and both log the reason (HandoverOptions::log).
enum class handover_errc : int {
  not_allowed = 1,     // the peer runs as a user that HandoverOptions::allowed_uids does not list
  bad_protocol,        // the peer sent bytes that are not this protocol (or closed in a message)
  version_mismatch,    // the peer speaks another version of the protocol
  busy,                // the running process is handing its listeners to another successor
  superseded,          // the running process has handed its listeners over already
  peer_gone,           // the other process closed the connection (or died) before the end
  too_many_listeners,  // more than kMaxHandoverListeners listeners, or a name over 255 bytes
  duplicate_name,      // a second listener under a name already offered
  not_a_file_path,     // the hand-over path is empty or abstract ("@name"): it must be a file path
};

// handover_category returns the std::error_category of handover_errc (name "aem.handover").
// Any thread.
AEM_EXPORT const std::error_category& handover_category() noexcept;

// make_error_code wraps a handover_errc in a std::error_code, so that `ec == handover_errc::…`
// compiles.
inline std::error_code make_error_code(handover_errc e) noexcept { return {static_cast<int>(e), handover_category()}; }

// kMaxHandoverListeners is how many listeners one process may hand over.
inline constexpr std::size_t kMaxHandoverListeners = 64;

// HandoverPeer names the process on the other side of a hand-over (from its socket's
// credentials, SO_PEERCRED: what the kernel says, not what the peer claims).
struct HandoverPeer {
  std::int32_t pid = 0;
  std::uint32_t uid = 0;
};

// HandoverOptions configure both sides of a hand-over: the same options serve a process that
// takes over and, later, offers to its own successor.
struct HandoverOptions {
  // path is the Unix socket where a running process offers its listeners; a file path (an
  // abstract "@name" is refused: the successor replaces the file atomically). Required.
  std::string path{};
  // allowed_uids are the users whose processes may take the listeners (and give them). Empty:
  // this process's effective user only; the socket file is then readable by its owner only.
  // With other users listed it is open to all and the peer's credentials decide.
  std::vector<std::uint32_t> allowed_uids{};
  // timeout bounds each wait for the peer's next message during the hand-over.
  Duration timeout = std::chrono::seconds(10);
  // ready_timeout bounds how long a successor may take from receiving the listeners to
  // confirming that it accepts on them (its start-up); past it the old process keeps serving.
  Duration ready_timeout = std::chrono::seconds(60);
  // offer_signal, when not 0 (SIGUSR2, SIGHUP, …), holds the offer back until the process
  // receives that signal (aem::on_signal; block it in main() before the runtime starts): the
  // operator arms a hand-over first, then starts the new program. Until then the path is left
  // alone, and a process started with it binds fresh listeners (or fails where the port is
  // taken). 0: the listeners are offered from ready() on, and a successor's connection alone
  // starts a hand-over.
  int offer_signal = 0;
  // on_handed_over runs (in a capsule on the core that called ready()) once a successor has
  // confirmed that it accepts on the listeners: the old process should stop accepting now,
  // finish its requests and exit (the successor serves the ports). Optional.
  std::function<void(const HandoverPeer& successor)> on_handed_over{};
  // log receives one line per event an operator should see (a hand-over, a refusal, a
  // successor or predecessor that went away). Empty: the lines go to the runtime's log
  // (Config::log; stderr by default) at LogLevel::info, each prefixed "handover: ".
  std::function<void(std::string_view line)> log{};
};

// Handover passes a server's listening sockets from a running process to its successor.
//
// In every process, from the root capsule:
//   1. claim(options) asks whoever offers on options.path for its listeners. If a process
//      answers, its listeners are received (the same kernel sockets, still accepting); if
//      nobody does (no socket file, or a stale one), this is a first start.
//   2. tcp_listener(name, address) / unix_listener(...) give the listener of that name: the one
//      received, or a fresh one bound to `address`. A listener made otherwise can be added
//      with offer(name, listener).
//   3. Once the process accepts on them, ready() tells the predecessor (which then stops
//      accepting and drains, see on_handed_over) and starts offering the listeners on the path
//      for the next successor.
//   4. When a successor has taken them, on_handed_over runs: stop accepting (cancel the
//      accept loops or registrations; closing the listener objects is fine, the successor
//      holds the sockets), let the requests in flight finish, end idle connections, exit.
// So an upgrade is: start the new program with the same path. A successor that fails before
// it confirms leaves the old process serving, a second successor at the same time is refused
// with handover_errc::busy, and a process that may not take the listeners (another user, or
// bytes that are not this protocol) is refused and logged.
//
// Example (the root capsule):
//   auto handover = aem::Handover::claim({.path = "/run/app/handover.sock",
//                                         .on_handed_over = [&](auto&) { stop.done(); }});
//   if (!handover) return fail(handover.error());      // refused: another successor, a stranger…
//   auto listener = handover->tcp_listener("http", *aem::SocketAddress::parse("0.0.0.0:80"));
//   if (!listener) return fail(listener.error());
//   start_accepting(*listener);
//   if (auto ready = handover->ready(); !ready) return fail(ready.error());
//   stop.wait();                                        // a signal, or a successor took over
//   gate.drain(30s);
//
// One process holds one Handover. claim, ready and the listener calls are made from capsules
// of one core, in that order; close() and the destructor from any capsule or thread. The
// offering runs in capsules on the core that called ready() until close(), the destruction of
// the Handover, or the runtime's stop.
class AEM_EXPORT Handover {
 public:
  // claim connects to options.path and takes the listeners a running process offers there.
  // Without an answer (the file does not exist, or nobody listens) it returns a Handover
  // without listeners: a first start. Call from a capsule.
  // Errors: handover_errc::not_a_file_path, not_allowed (the running process's user is not
  // allowed here, or ours is not there), busy, superseded, version_mismatch, bad_protocol,
  // peer_gone; errc::timed_out (options.timeout); errc::not_in_capsule; the errno of the
  // connect (std::errc::permission_denied on the socket file, …).
  static Result<Handover> claim(HandoverOptions options);

  Handover(Handover&&) noexcept;
  Handover& operator=(Handover&&) noexcept;
  Handover(const Handover&) = delete;
  Handover& operator=(const Handover&) = delete;
  // ~Handover stops offering (as close()) and closes listeners received but never taken.
  ~Handover();

  // inherited tells whether a predecessor handed its listeners over. Any thread.
  bool inherited() const noexcept;
  // predecessor names the process that handed them over ({} on a first start). Any thread.
  HandoverPeer predecessor() const noexcept;
  // inherited_names lists the listeners received and not taken yet. Any thread.
  std::vector<std::string> inherited_names() const;

  // tcp_listener returns the listener the predecessor handed over under `name` when it is a
  // TCP listener on `address` (a port 0 in `address` takes any port; an address that differs
  // otherwise means the configuration changed: the received one is closed and a fresh one
  // bound), or else binds a fresh one with `options`. Either way the listener is offered to the
  // next successor under `name`. Call before ready(), from a capsule or a plain thread.
  // Errors: handover_errc::duplicate_name, too_many_listeners, those of TcpListener::bind and
  // TcpListener::adopt.
  Result<TcpListener> tcp_listener(std::string_view name, const SocketAddress& address,
                                   const BindOptions& options = {});
  // unix_listener is tcp_listener for a Unix-domain listener (BindOptions as UnixListener::bind).
  Result<UnixListener> unix_listener(std::string_view name, const SocketAddress& address,
                                     const BindOptions& options = {});
  // offer adds a listener made elsewhere, to be handed to the next successor under `name` (the
  // Handover keeps its own reference to the socket: closing `listener` later does not withdraw
  // it). Any thread. Errors: handover_errc::duplicate_name, too_many_listeners,
  // std::errc::bad_file_descriptor (closed listener), the errno of dup.
  Result<void> offer(std::string_view name, const ListenerSocket& listener);

  // ready tells the predecessor that this process accepts on its listeners (the predecessor
  // then stops accepting: on_handed_over) and starts offering the listeners on options.path
  // (with HandoverOptions::offer_signal: once that signal arrives).
  // Listeners received but not taken are closed here (and logged). A predecessor that went
  // away before its acknowledgement is logged, not an error: the listeners are ours. Call once,
  // from a capsule. Errors: errc::invalid_argument (called twice), errc::not_in_capsule, the
  // errno of binding or renaming the socket file, errc::shutting_down, the errors of
  // aem::on_signal (with offer_signal).
  Result<void> ready();

  // handed_over tells whether a successor has taken the listeners. Any thread.
  bool handed_over() const noexcept;

  // close stops offering: the socket file is removed (unless a successor's has replaced it)
  // and later successors find nobody (they start first). Idempotent. Any capsule or thread.
  void close() noexcept;

  struct State;  // shared with the offering capsules

 private:
  explicit Handover(std::shared_ptr<State> state) noexcept;
  std::shared_ptr<State> state_;
};

}  // namespace aem

template <>
struct std::is_error_code_enum<aem::handover_errc> : std::true_type {};
