// signal.hpp — POSIX signals as events: aem::on_signal runs a handler, as an ordinary
// registration (priority, executor, queue bound, aem::ctl), for each signal the process gets.
//
// How: the signal is blocked in every runtime thread and read through a signalfd on each core
// (so no async-signal-safety rules apply to the handler). Each instance is read once, by
// whichever core's read takes it, and handed to every registration of that signal on every
// core (fan-out).
//
// Blocking, and what the application must do: a signal is only ever consumed through the
// signalfd if no thread of the process leaves it unblocked — one that does gets the signal's
// default action (for most: the process ends) or the application's sigaction handler. on_signal
// blocks it in every thread of the runtime, the thread that calls Runtime::run included, before
// it returns. Threads the application starts itself must block it too: the simplest is to block
// the signals with pthread_sigmask in main() before creating any thread (threads inherit the
// mask), which also covers a signal that arrives before on_signal. A signal sent to one
// particular non-runtime thread (pthread_kill, tgkill) stays pending in that thread: only that
// thread could read it. The signals stay blocked (and read, with nobody to hand them to, until
// the runtime stops) after the last registration is cancelled: unblocking could run the default
// action for an instance already on its way, and the application's other threads keep it
// blocked anyway. Instances of one standard signal that arrive before it is read merge into one
// (as POSIX has it); real-time signals queue.
#pragma once

#include <aem/detail/registration.hpp>
#include <aem/event.hpp>
#include <aem/event_id.hpp>
#include <aem/executor.hpp>
#include <aem/export.hpp>
#include <aem/priority.hpp>
#include <aem/result.hpp>

#include <cstdint>
#include <cstring>
#include <functional>
#include <type_traits>
#include <utility>

namespace aem {

// SignalInfo describes one signal received (from the kernel's signalfd_siginfo).
struct SignalInfo {
  int signo = 0;
  int code = 0;             // si_code: SI_USER (kill), SI_TKILL (pthread_kill), SI_QUEUE (sigqueue), ...
  std::int32_t pid = 0;     // the sender's process id (kill, sigqueue; SIGCHLD: the child)
  std::uint32_t uid = 0;    // the sender's real user id
  std::int32_t status = 0;  // SIGCHLD: the exit status or signal
  std::uint64_t value = 0;  // sigqueue: the value sent (sival_ptr, whose low bits are sival_int)
};

// SignalOptions say how a signal's activations run.
struct SignalOptions {
  Priority priority = Priority::normal;
  Executor exec = Executor::fresh_capsule;
  std::uint32_t queue_bound = kDefaultQueueBound;
  // on_lost hears, in order with the activations, of signals dropped at the queue bound
  // (signals cannot wait); without it the loss is reported to Config::log. Optional.
  std::function<void(Lost)> on_lost{};
  // site is where the registration is made, named by Runtime::dump. Leave it: the default
  // captures the line that makes the options (the registering call when they are written there).
  SpawnSite site = SpawnSite::here();
};

namespace detail {

// signal_prepare checks `signo` and makes sure every core of the runtime blocks it and reads it
// through its signalfd (the calling capsule may wait for the other cores). Errors: as on_signal.
AEM_EXPORT Result<void> signal_prepare(int signo);
// arm_signal starts a reserved registration for `signo` on the calling core.
AEM_EXPORT Result<EventId> arm_signal(const RegistrationSlot& slot, const HandlerOps* ops, int signo) noexcept;

// signal_info_of reads the SignalInfo an activation carries (just the signo if the runtime ran
// out of memory for the rest).
inline SignalInfo signal_info_of(const Payload& payload) noexcept {
  SignalInfo info;
  if (payload.data && payload.data.size() == sizeof info) std::memcpy(&info, payload.data.bytes().data(), sizeof info);
  info.signo = payload.value;
  return info;
}

struct InvokeSignal {
  static constexpr HandlerSignature signature = HandlerSignature::signal;
  template <typename H>
  static constexpr bool accepts = std::is_invocable_v<H&, const SignalInfo&> || std::is_invocable_v<H&>;
  template <typename H>
  void operator()(H& handler, Payload& payload) const {
    if constexpr (std::is_invocable_v<H&, const SignalInfo&>) {
      const SignalInfo info = signal_info_of(payload);
      std::invoke(handler, info);
    } else {
      std::invoke(handler);
    }
  }
};

}  // namespace detail

// on_signal registers `handler` for signal `signo`: `handler(const SignalInfo&)` or `handler()`,
// for each instance the process receives, by the registration's executor and at its priority.
// Lives on the calling core until cancelled. Every registration of a signal, on any core, gets
// every instance; aem::ctl works on it (disable queues instances up to the queue bound; beyond
// it they are dropped and reported through on_lost). ctl(id).replace_handler is not supported
// for signal registrations (errc::invalid_argument). See the top of this file for the blocking
// the application's own threads need. Call from a capsule (the first registration of a signal
// waits until every core blocks it); from an inline handler only for a signal registered before.
// Errors: errc::invalid_argument (signo out of range, SIGKILL, SIGSTOP, the synchronous
// SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, and the two glibc reserves for its threads; a bad
// priority, executor or queue bound), errc::not_in_capsule, errc::inline_handler_blocked,
// errc::shutting_down, errc::resource_limit, errc::out_of_memory, the errno of signalfd(2).
//
// Example:
//   auto id = aem::on_signal(SIGTERM, [&runtime](const aem::SignalInfo& s) {
//     log("SIGTERM from pid {}", s.pid);
//     runtime.stop();  // from a capsule: requests the stop
//   });
template <typename F>
Result<EventId> on_signal(int signo, F&& handler, SignalOptions options = {}) {
  static_assert(detail::InvokeSignal::accepts<std::decay_t<F>>,
                "a signal handler is called with const aem::SignalInfo& or nothing");
  if (Result<void> ready = detail::signal_prepare(signo); !ready) return ready.error();
  detail::RegistrationOptions reg{options.priority, options.exec, options.queue_bound, std::move(options.on_lost), {},
                                  SourceType::signal};
  reg.site = options.site.record();
  return detail::register_handler<detail::InvokeSignal>(
      std::forward<F>(handler), reg, [signo](const detail::RegistrationSlot& slot, const detail::HandlerOps* ops) {
        return detail::arm_signal(slot, ops, signo);
      });
}

}  // namespace aem
