// log.hpp — where the runtime's own diagnostics go: a level, the core, a message.
#pragma once

#include <aem/export.hpp>

#include <cstdint>
#include <functional>
#include <string_view>

namespace aem {

// LogLevel says how much a diagnostic of the runtime matters.
enum class LogLevel : std::uint8_t {
  // debug is detail for whoever investigates the runtime itself.
  debug,
  // info is a normal event worth knowing, e.g. a listener pausing its accepts while the
  // process is out of file descriptors.
  info,
  // warning is something lost or refused while the runtime goes on: a handler threw,
  // activations were dropped at a queue bound, a core stalled.
  warning,
  // error is something the runtime could not do: bytes lost for want of memory, a call refused
  // because it was made from the wrong thread.
  error,
};

// kNoCore in LogRecord::core: the message was raised on a thread that is no core of a runtime
// (a blocking-pool thread, the thread that calls Runtime::stop, a foreign thread).
inline constexpr unsigned kNoCore = ~0u;

// LogRecord is one diagnostic of the runtime, as a LogSink receives it.
struct LogRecord {
  LogLevel level = LogLevel::info;
  // core is the index of the core the message is about (usually the one that raised it), or
  // kNoCore.
  unsigned core = kNoCore;
  // message is the text without a prefix and without a final newline. A long report (a stall
  // with its backtrace) may span several lines. It is valid only during the sink's call: copy
  // it to keep it.
  std::string_view message;
};

// LogSink receives the runtime's diagnostics (Config::log).
//
// It may be called from any of the runtime's threads at the same time (every core's thread,
// the blocking pool's threads, the thread that starts or stops the runtime), so it must be
// thread-safe. It is called on the thread that raised the message, often inside the
// scheduler or a handler: it must not block for long, must not call the runtime's suspending
// functions, and should not throw (what it throws is caught, and the message is written to
// stderr instead). Messages raised where memory ran out are formatted without allocating; a
// sink that allocates itself may then fail to record them. A message the sink raises while it
// runs (on the same thread) goes to stderr, never back to the sink. One message bypasses the
// sink: a capsule's stack overflow is written to stderr from the fault's signal handler, where
// a sink may not run, just before the process aborts.
using LogSink = std::function<void(const LogRecord& record)>;

// log_level_name returns "debug", "info", "warning" or "error".
constexpr const char* log_level_name(LogLevel level) noexcept {
  switch (level) {
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warning: return "warning";
    case LogLevel::error: return "error";
  }
  return "unknown";
}

// write_log_to_stderr is the default sink: it writes "aem: <message>\n" to stderr in one
// system call (lines of concurrent threads do not interleave), without allocating. A custom
// sink may call it for what it does not handle itself. Any thread; async-signal-safe.
AEM_EXPORT void write_log_to_stderr(const LogRecord& record) noexcept;

}  // namespace aem
