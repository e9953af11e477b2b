// diagnostics.cpp — the diagnostics service's life, its signals, and the stall watchdog.
//
// A core adds one to its progress counter at every loop turn and capsule switch (a relaxed
// store, the only cost on the hot path). The watchdog thread looks every quarter threshold: a
// counter that stands still while the core is not asleep in the kernel is a stall once it has
// stood for the threshold. The watchdog then sends the stall signal to that core's thread; the
// handler, on the stalled thread, unwinds the interrupted code into the core's StallSample
// (libunwind, async-signal-safe, no allocation). Symbolizing and writing the report happen on
// the watchdog thread, when the stall ends or after a while if it does not.
#include "runtime/diag/diagnostics.hpp"

#include "runtime/diag/registry.hpp"
#include "runtime/diag/symbolize.hpp"
#include "base/log.hpp"
#include "base/probes.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>

namespace aem::detail {
namespace {

using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;

int stall_signal() noexcept { return SIGRTMAX - 1; }

std::mutex g_signal_setup;
bool g_stall_handler_installed = false;
bool g_dump_handler_installed[_NSIG] = {};

void on_stall_signal(int, siginfo_t*, void* ucontext) {
  const int saved_errno = errno;
  Core* core = Core::current_core();
  Diagnostics* diagnostics = core != nullptr ? find_diagnostics(&core->runtime()) : nullptr;
  if (diagnostics != nullptr) {
    StallSample& sample = diagnostics->sample(core->index());
    int expected = StallSample::kRequested;
    if (sample.state.compare_exchange_strong(expected, StallSample::kCapturing, std::memory_order_acq_rel)) {
      sample.progress = core->progress();
      const CapsuleControl* capsule = core->current();
      sample.in_capsule = capsule != nullptr;
      if (capsule != nullptr) {
        sample.capsule_id = capsule->guard.capsule_id;
        sample.site = capsule->site;
        sample.priority = capsule->priority;
        sample.group = capsule->task != nullptr ? capsule->task->group : nullptr;
      }
      sample.frame_count = unwind_signal_frames(ucontext, sample.frames, kMaxFrames);
      sample.state.store(StallSample::kDone, std::memory_order_release);
    }
  }
  errno = saved_errno;
}

void on_dump_signal(int signal) {
  const int saved_errno = errno;
  for_each_diagnostics([signal](Diagnostics& diagnostics) {
    if (diagnostics.dump_signal() == signal) diagnostics.request_dump();
  });
  errno = saved_errno;
}

// take_signal installs `handler` for `signal` unless the application handles it already.
bool take_signal(int signal, void (*handler)(int, siginfo_t*, void*), void (*plain)(int)) noexcept {
  struct sigaction old {};
  if (::sigaction(signal, nullptr, &old) != 0) return false;
  const bool ours = handler != nullptr ? (old.sa_flags & SA_SIGINFO) != 0 && old.sa_sigaction == handler
                                       : (old.sa_flags & SA_SIGINFO) == 0 && old.sa_handler == plain;
  if (ours) return true;
  if ((old.sa_flags & SA_SIGINFO) == 0 && old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN) return false;
  struct sigaction action {};
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  if (handler != nullptr) {
    action.sa_flags |= SA_SIGINFO;
    action.sa_sigaction = handler;
  } else {
    action.sa_handler = plain;
  }
  return ::sigaction(signal, &action, nullptr) == 0;
}

std::string milliseconds_text(nanoseconds d) {
  char text[32];
  std::snprintf(text, sizeof text, "%lld ms", static_cast<long long>(d.count() / 1'000'000));
  return text;
}

}  // namespace

// ---- life ---------------------------------------------------------------------------------

Diagnostics::Diagnostics(RuntimeImpl& runtime)
    : runtime_(runtime), samples_(new StallSample[runtime.core_count()]), watches_(runtime.core_count()) {
  for (unsigned i = 0; i < runtime.core_count(); ++i) cores_.push_back(&runtime.core(i));
  register_runtime(&runtime_, this, cores_.data(), static_cast<unsigned>(cores_.size()));
}

Diagnostics::~Diagnostics() {
  stop_watchdog();
  unregister_runtime(&runtime_);
}

std::error_code Diagnostics::starting() noexcept {
  const Config& config = runtime_.config();
  const int dump = config.dump_signal;
  if (config.stall_threshold < nanoseconds::zero()) return make_error_code(errc::invalid_argument);
  if (dump != 0 && (dump < 1 || dump >= _NSIG || dump == SIGKILL || dump == SIGSTOP || dump == stall_signal())) {
    return make_error_code(errc::invalid_argument);
  }
  {
    std::lock_guard lock(g_signal_setup);
    if (config.stall_threshold > nanoseconds::zero() && !g_stall_handler_installed) {
      g_stall_handler_installed = take_signal(stall_signal(), &on_stall_signal, nullptr);
    }
    if (dump != 0 && !g_dump_handler_installed[dump]) g_dump_handler_installed[dump] = take_signal(dump, nullptr, &on_dump_signal);
  }
  start_watchdog();
  return {};
}

void Diagnostics::start_watchdog() noexcept {
  std::lock_guard lock(lifecycle_);
  const Config& config = runtime_.config();
  if (watchdog_.joinable() || (config.stall_threshold == nanoseconds::zero() && config.dump_signal == 0)) return;
  if (wake_fd_.load() < 0) wake_fd_.store(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  stopping_.store(false, std::memory_order_release);
  for (CoreWatch& watch : watches_) watch = CoreWatch{};
  try {
    watchdog_ = std::thread([this] { watch(); });
  } catch (const std::system_error&) {
    log(LogLevel::warning, "the stall watchdog thread could not be started: no stall reports");
  }
}

void Diagnostics::stop_watchdog() noexcept {
  std::lock_guard lock(lifecycle_);
  if (!watchdog_.joinable()) return;
  stopping_.store(true, std::memory_order_release);
  const std::uint64_t one = 1;
  const int fd = wake_fd_.exchange(-1);
  if (fd >= 0) (void)!::write(fd, &one, sizeof one);
  watchdog_.join();
  if (fd >= 0) ::close(fd);
}

Diagnostics* Diagnostics::of(const RuntimeImpl& runtime) noexcept { return find_diagnostics(&runtime); }

void Diagnostics::request_dump() noexcept {
  dump_requested_.store(true, std::memory_order_release);
  const std::uint64_t one = 1;
  const int fd = wake_fd_.load(std::memory_order_acquire);
  if (fd >= 0) (void)!::write(fd, &one, sizeof one);
}

// ---- the watchdog -------------------------------------------------------------------------

void Diagnostics::watch() noexcept {
  const Config& config = runtime_.config();
  const LogScope route(config.log);
  const nanoseconds threshold = config.stall_threshold;
  const int wake_fd = wake_fd_.load();  // stop_watchdog closes it only after this thread ends
  // A quarter of the threshold: a stall is seen at most 25% late; 1 to 250 ms.
  const int tick_ms = threshold == nanoseconds::zero()
                          ? -1
                          : static_cast<int>(std::clamp<long long>(std::chrono::duration_cast<milliseconds>(threshold).count() / 4, 1, 250));
  while (!stopping_.load(std::memory_order_acquire)) {
    pollfd wake{wake_fd, POLLIN, 0};
    if (::poll(&wake, 1, tick_ms) > 0) {
      std::uint64_t count = 0;
      (void)!::read(wake_fd, &count, sizeof count);
    }
    if (stopping_.load(std::memory_order_acquire)) break;
    if (dump_requested_.exchange(false, std::memory_order_acq_rel)) {
      log_text_about(LogLevel::info, kNoCore, dump_text(milliseconds(1000)));
    }
    if (threshold == nanoseconds::zero()) continue;
    const auto now = SteadyClock::now();
    g_diag_clock_ns.store(now.time_since_epoch().count(), std::memory_order_relaxed);
    for (unsigned i = 0; i < watches_.size(); ++i) check(i, now);
  }
  // A stall still going on when the runtime stops is reported all the same.
  const auto now = SteadyClock::now();
  for (unsigned i = 0; i < watches_.size(); ++i) {
    if (watches_[i].episode) end_episode(i, now);
  }
}

void Diagnostics::check(unsigned index, SteadyClock::time_point now) noexcept {
  CoreWatch& watch = watches_[index];
  Core& core = runtime_.core(index);
  const std::uint64_t progress = core.progress();
  // A core that sleeps waiting for work, or is not in its loop, is not stalled.
  const bool active = core.metrics().serving() && !core.asleep();
  if (!active || progress != watch.progress) {
    if (watch.episode) end_episode(index, now);
    watch.progress = progress;
    watch.since = now;
    return;
  }
  const nanoseconds stalled = now - watch.since;
  const nanoseconds threshold = runtime_.config().stall_threshold;
  if (!watch.episode) {
    if (stalled < threshold) return;
    watch.episode = true;
    watch.reported = false;
    watch.captured = false;
    core.metrics().count_stall();
    if (now < watch.next_report) {
      ++watch.suppressed;
      watch.reported = true;  // within the back-off: counted, not reported
      return;
    }
    watch.captured = capture(index, progress);
    // Reported when it ends, so the report tells its whole length; a stall that goes on is
    // reported after a while all the same.
    watch.report_due = now + std::max<nanoseconds>(4 * threshold, std::chrono::seconds(1));
    return;
  }
  core.metrics().note_stall(stalled);
  if (!watch.reported && now >= watch.report_due) report(index, stalled, true);
}

void Diagnostics::end_episode(unsigned index, SteadyClock::time_point now) noexcept {
  CoreWatch& watch = watches_[index];
  const nanoseconds stalled = now - watch.since;
  runtime_.core(index).metrics().note_stall(stalled);
  AEM_PROBE_STALL(index, watch.captured && samples_[index].in_capsule ? samples_[index].capsule_id : 0,
                  static_cast<std::uint64_t>(stalled.count()));
  if (!watch.reported) report(index, stalled, false);
  watch.episode = false;
}

bool Diagnostics::capture(unsigned index, std::uint64_t progress) noexcept {
  StallSample& sample = samples_[index];
  const int thread = runtime_.core(index).thread_id();
  {
    std::lock_guard lock(g_signal_setup);
    if (!g_stall_handler_installed || thread == 0) return false;
  }
  sample.frame_count = 0;
  sample.state.store(StallSample::kRequested, std::memory_order_release);
  if (::syscall(SYS_tgkill, ::getpid(), thread, stall_signal()) != 0) {
    sample.state.store(StallSample::kIdle, std::memory_order_relaxed);
    return false;
  }
  // The handler runs as soon as the thread is scheduled; give it up to 100 ms.
  for (int waited = 0; waited < 100 && sample.state.load(std::memory_order_acquire) != StallSample::kDone; ++waited) {
    std::this_thread::sleep_for(milliseconds(1));
  }
  int expected = StallSample::kRequested;
  if (sample.state.compare_exchange_strong(expected, StallSample::kIdle, std::memory_order_acq_rel)) return false;
  while (sample.state.load(std::memory_order_acquire) == StallSample::kCapturing) std::this_thread::yield();
  sample.state.store(StallSample::kIdle, std::memory_order_relaxed);
  // A handler that ran after the core moved on recorded other code.
  return sample.progress == progress;
}

void Diagnostics::report(unsigned index, nanoseconds stalled, bool ongoing) noexcept {
  CoreWatch& watch = watches_[index];
  watch.reported = true;
  const auto now = SteadyClock::now();
  watch.next_report = now + watch.backoff;
  watch.backoff = watch.backoff == nanoseconds::zero() ? nanoseconds(std::chrono::seconds(1))
                                                       : std::min<nanoseconds>(2 * watch.backoff, std::chrono::seconds(60));
  try {
    const StallSample& sample = samples_[index];
    std::string text = "core " + std::to_string(index) + (ongoing ? " has been stalled for " : " stalled for ") +
                       milliseconds_text(stalled) + (ongoing ? " so far" : "") + " (stall_threshold " +
                       milliseconds_text(runtime_.config().stall_threshold) + ")";
    if (!watch.captured) {
      text += ": no backtrace (the core moved on before it was taken, or signal " + std::to_string(stall_signal()) +
              " is the application's)";
    } else if (sample.in_capsule) {
      text += " in capsule " + std::to_string(sample.capsule_id >> 56) + ":" +
              std::to_string(sample.capsule_id & ((CapsuleId{1} << 56) - 1)) + ", priority " +
              std::to_string(static_cast<unsigned>(sample.priority)) + ", group " +
              (sample.group == nullptr ? std::string("default") : "0x" + [&] {
                char hex[20];
                std::snprintf(hex, sizeof hex, "%jx", static_cast<std::uintmax_t>(reinterpret_cast<std::uintptr_t>(sample.group)));
                return std::string(hex);
              }()) + ", spawned at ";
      if (sample.site != nullptr) {
        text += std::string(sample.site->file) + ":" + std::to_string(sample.site->line) + " (" + sample.site->function + ")";
      } else {
        text += "an unknown site (Runtime::run or submit, a spawn on another core, or a compiler without std::source_location)";
      }
    } else {
      text += " in its loop, outside any capsule (the scheduler, a deferred activation or an inline handler)";
    }
    if (watch.suppressed != 0) {
      text += "; " + std::to_string(watch.suppressed) + " earlier stall(s) of this core were not reported (back-off)";
      watch.suppressed = 0;
    }
    if (watch.captured) {
      text += "\nbacktrace, taken on the core's thread:\n";
      Symbolizer symbols;
      format_frames(symbols, sample.frames, sample.frame_count, true, text);
      if (!text.empty() && text.back() == '\n') text.pop_back();
    }
    log_text_about(LogLevel::warning, index, text);
  } catch (const std::bad_alloc&) {
    log(LogLevel::warning, "core %u stalled for %lld ms (no memory for the report)", index,
        static_cast<long long>(stalled.count() / 1'000'000));
  }
}

}  // namespace aem::detail
