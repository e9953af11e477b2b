// log.hpp — the one way the library writes a diagnostic: to the LogSink (Config::log) of the
// runtime the calling thread works for. No layer writes to stderr itself.
//
// Routing. Each thread has a route: the sink and the core its messages are about. A core's
// thread, a blocking-pool thread and a runtime's own helper threads set it for their lifetime
// with a LogScope; Runtime::start / stop set it while they run on the caller's thread. A thread
// with no route (a foreign thread misusing an arena, a destructor after the runtime) uses the
// process-wide fallback: the sink of the oldest live runtime that claimed it (FallbackLogClaim),
// else write_log_to_stderr. A sink that logs while it runs gets stderr (no recursion).
#pragma once

#include <aem/log.hpp>

#include <cstddef>
#include <string_view>

namespace aem::detail {

// kLogLineBytes bounds a message formatted by log(): longer ones end in "...".
inline constexpr std::size_t kLogLineBytes = 512;

// log formats a printf-style message into a stack buffer and hands it to the calling thread's
// sink (see above), about the thread's core. It never allocates, so out-of-memory paths may
// use it. Any thread; never throws.
void log(LogLevel level, const char* format, ...) noexcept __attribute__((format(printf, 2, 3)));

// log_text hands `text` as it is, of any length (a multi-line report), to the calling thread's
// sink, about the thread's core. Any thread; never throws.
void log_text(LogLevel level, std::string_view text) noexcept;

// log_text_about is log_text for a message about core `core` (or kNoCore) raised on another
// thread, e.g. a watchdog thread reporting a stalled core. Any thread; never throws.
void log_text_about(LogLevel level, unsigned core, std::string_view text) noexcept;

// LogScope routes the calling thread's messages to `sink` (empty: stderr), about core `core`,
// until it is destroyed; then the thread's previous route is back. Scopes nest; `sink` must
// outlive the scope. Create and destroy on the same thread.
class LogScope {
 public:
  explicit LogScope(const LogSink& sink, unsigned core = kNoCore) noexcept;
  ~LogScope();
  LogScope(const LogScope&) = delete;
  LogScope& operator=(const LogScope&) = delete;

 private:
  const LogSink* previous_sink_;
  unsigned previous_core_;
};

// FallbackLogClaim offers `sink` (if not empty) as the process-wide fallback for threads with
// no route, for its lifetime. Of several live claims the oldest serves; `sink` must outlive
// the claim. Destroying it waits for a fallback call in progress on another thread. Any thread.
class FallbackLogClaim {
 public:
  explicit FallbackLogClaim(const LogSink& sink) noexcept;
  ~FallbackLogClaim();
  FallbackLogClaim(const FallbackLogClaim&) = delete;
  FallbackLogClaim& operator=(const FallbackLogClaim&) = delete;

 private:
  friend struct FallbackLogList;
  const LogSink* sink_;
  FallbackLogClaim* previous_ = nullptr;
  FallbackLogClaim* next_ = nullptr;
  bool listed_ = false;
};

}  // namespace aem::detail
