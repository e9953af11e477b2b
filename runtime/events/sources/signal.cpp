// signal.cpp — POSIX signals as events (aem::on_signal). Each core that a signal registration
// needs has a SignalPort: a signalfd for every signal registered anywhere in the runtime (the
// core's thread blocks them), read by a registration of the core's own table (fd_reader.hpp,
// inline on the dispatcher). Every core reads: a signal sent to one runtime thread (pthread_kill)
// can only be read there. An instance is read once, by whichever core's read dequeues it; that
// core activates its own registrations of the signal and posts the instance to the other cores
// that have some (SignalPort::wanted), which activate theirs.
//
// No instance is read before a registration can take it: preparing a signal only blocks it in
// every core's thread (it stays pending in the kernel); the first registration adds it to its own
// core's signalfd at once and to the other cores' through their mailboxes, after it is recorded
// as wanted here.
#include "runtime/sched/core.hpp"
#include "runtime/events/event_table.hpp"
#include "runtime/events/sources/fd_reader.hpp"
#include "runtime/sched/runtime_impl.hpp"
#include "alloc/task_memory.hpp"

#include <aem/cross_core.hpp>
#include <aem/signal.hpp>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <new>
#include <pthread.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <utility>
#include <vector>

namespace aem::detail {

struct SignalPort {
  struct Local {
    int signo;
    EventId id;
  };
  int fd = -1;
  std::atomic<std::uint64_t> blocked{0}; // the signals the core's thread blocks (bit signo - 1)
  std::atomic<std::uint64_t> mask{0};    // those of them its signalfd reads: registered somewhere
  std::atomic<std::uint64_t> wanted{0};  // signals with registrations here (cleared lazily)
  std::atomic<bool> open{false};         // the reader is registered (cleared when it is cancelled)
  std::vector<Local> registrations;      // the owner core's only

  ~SignalPort() {
    if (fd >= 0) ::close(fd);
  }
};

void free_signal_port(SignalPort* port) noexcept { delete port; }

EventId EventTable::arm_kind(Registration* r, const HandlerOps* ops, SourceType kind) noexcept {
  r->ops = ops;
  r->kind = kind;
  return id_of(r);
}

Result<void> EventTable::activate_kind(EventId id, SourceType kind, Payload& payload) noexcept {
  Result<Registration*> found = lookup(id);
  if (!found) return found.error();
  if ((*found)->kind != kind) return make_error_code(errc::invalid_argument);
  dispatcher_.activate(*found, payload);
  return {};
}

namespace {

std::uint64_t bit(int signo) noexcept { return std::uint64_t{1} << (signo - 1); }

// refused: signals a signalfd cannot or must not take. The synchronous ones are raised by a
// faulting instruction in the faulting thread (the runtime reports stack overflows through
// SIGSEGV); SIGRTMIN-2 and SIGRTMIN-1 (32, 33) belong to glibc's thread machinery.
bool refused(int signo) noexcept {
  if (signo < 1 || signo > SIGRTMAX || signo > 64) return true;
  switch (signo) {
    case SIGKILL: case SIGSTOP: case SIGSEGV: case SIGBUS: case SIGFPE: case SIGILL: case SIGTRAP:
      return true;
    default:
      return signo > 31 && signo < SIGRTMIN;
  }
}

sigset_t set_of(std::uint64_t mask) noexcept {
  sigset_t set;
  sigemptyset(&set);
  for (int signo = 1; signo <= 64; ++signo) {
    if ((mask & bit(signo)) != 0) sigaddset(&set, signo);
  }
  return set;
}

// deliver_here activates the calling core's registrations of `info.signo`.
void deliver_here(const SignalInfo& info) noexcept {
  Core* core = Core::current_core();
  if (core == nullptr) return;
  EventTable& table = *event_table(core);
  SignalPort* port = table.signal_port().load(std::memory_order_acquire);
  if (port == nullptr) return;
  bool any = false;
  for (std::size_t i = 0; i < port->registrations.size();) {
    const SignalPort::Local local = port->registrations[i];
    if (local.signo != info.signo) {
      ++i;
      continue;
    }
    Payload payload;
    payload.value = info.signo;
    try {
      if (Result<EventData> data = core->arena().allocate_data(sizeof info)) {
        std::memcpy(data->bytes().data(), &info, sizeof info);
        payload.data = std::move(*data);
      }
    } catch (...) {
      // out of memory: the handler gets the signo alone
    }
    if (table.activate_kind(local.id, SourceType::signal, payload)) {
      any = true;
      ++i;
    } else {
      port->registrations.erase(port->registrations.begin() + static_cast<std::ptrdiff_t>(i));  // cancelled
    }
  }
  if (!any) port->wanted.fetch_and(~bit(info.signo), std::memory_order_relaxed);
}

// SignalHop carries one instance to another core's registrations (deliver_here there). The
// reader's core cannot have stopped (its reader runs), so no other core has left its loop, and
// the incoming count keeps the target in it until the hop has run.
struct SignalHop final : TaskState {
  SignalInfo info;
  explicit SignalHop(const SignalInfo& i) noexcept : info(i) {
    run = &run_impl;
    dispose = &dispose_impl;
    home = TaskHome::heap;
    priority = Priority::critical;
    flags.store(kReleased, std::memory_order_relaxed);
  }
  static void run_impl(TaskState* state) noexcept { deliver_here(static_cast<SignalHop*>(state)->info); }
  static void dispose_impl(TaskState* state) noexcept { static_cast<SignalHop*>(state)->~SignalHop(); }
};

// fan_out hands an instance read on this core to every core with registrations of it.
void fan_out(const SignalInfo& info) noexcept {
  Core& core = *Core::current_core();
  deliver_here(info);
  RuntimeImpl& runtime = core.runtime();
  for (unsigned k = 0; k < runtime.core_count(); ++k) {
    if (k == core.index()) continue;
    SignalPort* port = event_table(runtime.core(k)).signal_port().load(std::memory_order_acquire);
    if (port == nullptr || !port->open.load(std::memory_order_acquire) ||
        (port->wanted.load(std::memory_order_relaxed) & bit(info.signo)) == 0) {
      continue;
    }
    // Not aem::post: a capsule there may be missing (none free) or refused (Policy), and the
    // instance would be lost. Run on that core's dispatcher, in mailbox order (kMailRun).
    void* memory = nullptr;
    try {
      memory = task_allocate(sizeof(SignalHop), alignof(SignalHop));
    } catch (...) {
      continue;  // out of memory: that core's registrations miss this instance
    }
    runtime.core(k).run_on_dispatcher(new (memory) SignalHop(info));
  }
}

SignalInfo info_of(const signalfd_siginfo& s) noexcept {
  SignalInfo info;
  info.signo = static_cast<int>(s.ssi_signo);
  info.code = s.ssi_code;
  info.pid = static_cast<std::int32_t>(s.ssi_pid);
  info.uid = s.ssi_uid;
  info.status = s.ssi_status;
  info.value = s.ssi_ptr;
  return info;
}

// read_signals is the port's reader (a PortReader, fd_reader.hpp): it reads the signalfd dry
// and fans each instance out.
void read_signals(SignalPort& port) noexcept {
  signalfd_siginfo batch[8];
  for (;;) {
    const ssize_t got = ::read(port.fd, batch, sizeof batch);
    if (got <= 0) return;  // EAGAIN: all read (an error: the next readiness tries again)
    const auto count = static_cast<std::size_t>(got) / sizeof batch[0];
    for (std::size_t i = 0; i < count; ++i) fan_out(info_of(batch[i]));
    if (count < std::size(batch)) return;
  }
}

// read_here adds `signo` to the calling core's signalfd (its thread already blocks it).
std::error_code read_here(SignalPort& port, int signo) noexcept {
  const std::uint64_t mask = port.mask.load(std::memory_order_relaxed);
  if ((mask & bit(signo)) != 0) return {};
  const sigset_t all = set_of(mask | bit(signo));
  if (::signalfd(port.fd, &all, 0) < 0) return {errno, std::generic_category()};
  port.mask.store(mask | bit(signo), std::memory_order_release);
  return {};
}

// ReadSignal adds a signal to another core's signalfd, in that core's mailbox order: a
// registration of it now exists, so what that core reads has a taker.
struct ReadSignal final : TaskState {
  int signo;
  explicit ReadSignal(int s) noexcept : signo(s) {
    run = &run_impl;
    dispose = &dispose_impl;
    home = TaskHome::heap;
    priority = Priority::critical;
    flags.store(kReleased, std::memory_order_relaxed);
  }
  static void run_impl(TaskState* state) noexcept {
    SignalPort* port = event_table(Core::current_core())->signal_port().load(std::memory_order_acquire);
    // A failure leaves the signal pending for the cores that read it (signalfd fails only for
    // lack of kernel memory here).
    if (port != nullptr && port->open.load(std::memory_order_acquire)) {
      (void)read_here(*port, static_cast<ReadSignal*>(state)->signo);
    }
  }
  static void dispose_impl(TaskState* state) noexcept { static_cast<ReadSignal*>(state)->~ReadSignal(); }
};

// setup_here blocks `signo` in the calling core's thread, making the port (a signalfd that reads
// nothing yet) and its reader on first use. Runs in a capsule or inline handler of the core.
std::error_code setup_here(int signo) noexcept {
  Core& core = *Core::current_core();
  EventTable& table = event_table(core);
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, signo);
  if (const int rc = ::pthread_sigmask(SIG_BLOCK, &one, nullptr); rc != 0) return {rc, std::generic_category()};
  SignalPort* port = table.signal_port().load(std::memory_order_acquire);
  if (port != nullptr) {
    if (!port->open.load(std::memory_order_acquire)) return make_error_code(errc::shutting_down);
    port->blocked.fetch_or(bit(signo), std::memory_order_release);
    return {};
  }
  port = new (std::nothrow) SignalPort;
  if (port == nullptr) return make_error_code(errc::out_of_memory);
  sigset_t none;
  sigemptyset(&none);
  port->fd = ::signalfd(-1, &none, SFD_NONBLOCK | SFD_CLOEXEC);
  if (port->fd < 0) {
    const int error = errno;
    delete port;
    return {error, std::generic_category()};
  }
  Result<EventId> reader = make_error_code(errc::out_of_memory);
  try {
    reader = arm_port_reader<&read_signals>(port);
  } catch (...) {
  }
  if (!reader) {
    delete port;
    return reader.error();
  }
  port->blocked.store(bit(signo), std::memory_order_release);
  port->open.store(true, std::memory_order_release);
  table.signal_port().store(port, std::memory_order_release);
  return {};
}

bool ready_on(Core& core, int signo) noexcept {
  SignalPort* port = event_table(core).signal_port().load(std::memory_order_acquire);
  return port != nullptr && port->open.load(std::memory_order_acquire) &&
         (port->blocked.load(std::memory_order_acquire) & bit(signo)) != 0;
}

}  // namespace

Result<void> signal_prepare(int signo) {
  if (refused(signo)) return make_error_code(errc::invalid_argument);
  bool in_capsule = false;
  Core* core = Core::api_caller(in_capsule);
  if (core == nullptr) return make_error_code(errc::not_in_capsule);
  RuntimeImpl& runtime = core->runtime();
  if (runtime.stopping()) return make_error_code(errc::shutting_down);
  // This core first: the calling thread blocks the signal before anything else.
  if (!ready_on(*core, signo)) {
    if (std::error_code error = setup_here(signo)) return error;
  }
  for (unsigned k = 0; k < runtime.core_count(); ++k) {
    if (k == core->index() || ready_on(runtime.core(k), signo)) continue;
    if (!in_capsule) {
      (void)event_table(core)->note_inline_block();  // submit would suspend the dispatcher
      return make_error_code(errc::inline_handler_blocked);
    }
    // The code crosses as its value and whether it is aem's (the rest are errno values).
    Result<int> done = aem::submit(
        k,
        [signo] {
          const std::error_code error = setup_here(signo);
          return error.category() == error_category() ? -error.value() : error.value();
        },
        Priority::critical);
    if (!done) return done.error();
    if (*done < 0) return std::error_code(-*done, error_category());
    if (*done > 0) return std::error_code(*done, std::generic_category());
  }
  return {};
}

Result<EventId> arm_signal(const RegistrationSlot& slot, const HandlerOps* ops, int signo) noexcept {
  EventTable& table = *event_table(Core::current_core());
  const EventId id = table.arm_kind(static_cast<Registration*>(slot.registration), ops, SourceType::signal);
  SignalPort* port = table.signal_port().load(std::memory_order_acquire);
  if (port == nullptr || !port->open.load(std::memory_order_acquire)) {
    (void)table.cancel(id);
    return make_error_code(errc::shutting_down);
  }
  auto& locals = port->registrations;
  // Forget the cancelled ones here too, so that register/cancel cycles do not pile up.
  std::erase_if(locals, [&table](const SignalPort::Local& local) { return !table.info(local.id); });
  try {
    locals.push_back({signo, id});
  } catch (const std::bad_alloc&) {
    (void)table.cancel(id);
    return make_error_code(errc::out_of_memory);
  }
  port->wanted.fetch_or(bit(signo), std::memory_order_relaxed);
  if ((port->mask.load(std::memory_order_relaxed) & bit(signo)) != 0) return id;
  // The first registration of `signo` on this core: from now on its instances have a taker, so
  // this core reads them, and so do the others (a signal sent to one thread is read only there).
  if (std::error_code error = read_here(*port, signo)) {
    locals.pop_back();
    (void)table.cancel(id);
    return error;
  }
  Core& core = *Core::current_core();
  RuntimeImpl& runtime = core.runtime();
  for (unsigned k = 0; k < runtime.core_count(); ++k) {
    if (k == core.index()) continue;
    SignalPort* other = event_table(runtime.core(k)).signal_port().load(std::memory_order_acquire);
    if (other == nullptr || (other->mask.load(std::memory_order_acquire) & bit(signo)) != 0) continue;
    void* memory = nullptr;
    try {
      memory = task_allocate(sizeof(ReadSignal), alignof(ReadSignal));
    } catch (...) {
      continue;  // out of memory: that core leaves its thread's instances pending until it reads them
    }
    runtime.core(k).run_on_dispatcher(new (memory) ReadSignal(signo));
  }
  return id;
}

}  // namespace aem::detail
