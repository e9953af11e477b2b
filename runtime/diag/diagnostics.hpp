// diagnostics.hpp — a runtime's diagnostics service: the stall watchdog (a thread that notices a
// core whose progress counter stands still, has the core's own thread record its backtrace in
// a signal handler, then symbolizes and reports it), the capsule dump (Runtime::dump and
// Config::dump_signal) and the registry through which signal handlers and gdb/aem.py find the
// runtimes of the process.
#pragma once

#include "runtime/diag/unwind.hpp"
#include "runtime/sched/runtime_impl.hpp"

#include <aem/diagnostics.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace aem::detail {

// StallSample is what a core's thread records about itself in the stall signal's handler,
// into memory the watchdog set aside beforehand (nothing is allocated in the handler).
struct StallSample {
  enum : int { kIdle, kRequested, kCapturing, kDone };
  std::atomic<int> state{kIdle};
  std::uint64_t progress = 0;  // the core's progress counter when the handler ran
  bool in_capsule = false;
  CapsuleId capsule_id = 0;
  const SiteRecord* site = nullptr;
  Priority priority = Priority::normal;
  const void* group = nullptr;
  std::size_t frame_count = 0;
  std::uintptr_t frames[kMaxFrames] = {};
};

class Diagnostics final : public RuntimeService {
 public:
  explicit Diagnostics(RuntimeImpl& runtime);
  ~Diagnostics() override;

  std::error_code starting() noexcept override;
  void stop_requested() noexcept override {}
  void cores_stopped() noexcept override { stop_watchdog(); }

  // dump is Runtime::dump. Any thread.
  void dump(const DumpSink& sink, std::chrono::milliseconds per_core);
  // dump_text returns the whole dump as one string. Any thread.
  std::string dump_text(std::chrono::milliseconds per_core);

  // of returns the diagnostics of the runtime that `core` belongs to, or nullptr (the
  // registry; async-signal-safe).
  static Diagnostics* of(const RuntimeImpl& runtime) noexcept;
  StallSample& sample(unsigned core) noexcept { return samples_[core]; }
  int dump_signal() const noexcept { return runtime_.config().dump_signal; }
  // request_dump makes the watchdog thread write a dump to the log (async-signal-safe).
  void request_dump() noexcept;

 private:
  // CoreWatch is the watchdog's view of one core.
  struct CoreWatch {
    std::uint64_t progress = 0;
    std::chrono::steady_clock::time_point since{};  // when `progress` was first seen
    bool episode = false;       // the core is stalled now (past the threshold)
    bool reported = false;      // this stall was reported
    bool captured = false;      // a backtrace was taken for it
    std::chrono::steady_clock::time_point report_due{};
    std::chrono::steady_clock::time_point next_report{};  // the back-off
    std::chrono::nanoseconds backoff{0};
    std::uint64_t suppressed = 0;  // stalls not reported since the last report
  };

  void start_watchdog() noexcept;
  void stop_watchdog() noexcept;
  void watch() noexcept;
  void check(unsigned index, std::chrono::steady_clock::time_point now) noexcept;
  bool capture(unsigned index, std::uint64_t progress) noexcept;
  void report(unsigned index, std::chrono::nanoseconds stalled, bool ongoing) noexcept;
  void end_episode(unsigned index, std::chrono::steady_clock::time_point now) noexcept;

  RuntimeImpl& runtime_;
  std::unique_ptr<StallSample[]> samples_;
  std::vector<CoreWatch> watches_;
  std::vector<Core*> cores_;  // for gdb/aem.py, through the registry
  std::thread watchdog_;
  std::atomic<int> wake_fd_{-1};  // eventfd: a dump request or the stop (read by signal handlers)
  std::atomic<bool> stopping_{false};
  std::atomic<bool> dump_requested_{false};
  std::mutex lifecycle_;
};

}  // namespace aem::detail
