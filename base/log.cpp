// log.cpp — routing a diagnostic to its runtime's sink (see log.hpp), and the default sink.
#include "base/log.hpp"

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <sys/uio.h>
#include <unistd.h>

namespace aem {

void write_log_to_stderr(const LogRecord& record) noexcept {
  // One writev: a line is not split between concurrent writers (up to PIPE_BUF on a pipe).
  static constexpr char kPrefix[] = "aem: ";
  static constexpr char kNewline[] = "\n";
  iovec parts[3] = {
      {const_cast<char*>(kPrefix), sizeof kPrefix - 1},
      {const_cast<char*>(record.message.data()), record.message.size()},
      {const_cast<char*>(kNewline), 1},
  };
  iovec* next = parts;
  int left = 3;
  while (left > 0) {
    ssize_t written = ::writev(STDERR_FILENO, next, left);
    if (written < 0) {
      if (errno == EINTR) continue;
      return;  // nowhere else to report it
    }
    // A short write: skip what went out and write the rest.
    auto done = static_cast<std::size_t>(written);
    while (left > 0 && done >= next->iov_len) {
      done -= next->iov_len;
      ++next;
      --left;
    }
    if (left > 0) {
      next->iov_base = static_cast<char*>(next->iov_base) + done;
      next->iov_len -= done;
    }
  }
}

namespace detail {
namespace {

// The calling thread's route (LogScope): nullptr = none, use the fallback.
thread_local const LogSink* t_sink = nullptr;
thread_local unsigned t_core = kNoCore;
// Set while the thread runs a sink: what that sink logs goes to stderr.
thread_local bool t_in_sink = false;

void call_sink(const LogSink& sink, const LogRecord& record) noexcept {
  try {
    sink(record);
  } catch (...) {
    write_log_to_stderr(record);
  }
}

}  // namespace

// FallbackLogList is the process-wide list of FallbackLogClaims, oldest first.
struct FallbackLogList {
  static std::mutex& mutex() noexcept {
    static std::mutex m;  // constant-initialised: usable from any static destructor
    return m;
  }
  static FallbackLogClaim*& head() noexcept {
    static FallbackLogClaim* first = nullptr;
    return first;
  }
  static FallbackLogClaim*& tail() noexcept {
    static FallbackLogClaim* last = nullptr;
    return last;
  }
  // dispatch hands `record` to the oldest claim, under the lock so that the claim stays alive.
  static void dispatch(const LogRecord& record) noexcept {
    std::lock_guard lock(mutex());
    if (FallbackLogClaim* claim = head()) call_sink(*claim->sink_, record);
    else write_log_to_stderr(record);
  }
};

FallbackLogClaim::FallbackLogClaim(const LogSink& sink) noexcept : sink_(&sink) {
  if (!sink) return;
  std::lock_guard lock(FallbackLogList::mutex());
  previous_ = FallbackLogList::tail();
  if (previous_ != nullptr) previous_->next_ = this;
  else FallbackLogList::head() = this;
  FallbackLogList::tail() = this;
  listed_ = true;
}

FallbackLogClaim::~FallbackLogClaim() {
  if (!listed_) return;
  std::lock_guard lock(FallbackLogList::mutex());
  if (previous_ != nullptr) previous_->next_ = next_;
  else FallbackLogList::head() = next_;
  if (next_ != nullptr) next_->previous_ = previous_;
  else FallbackLogList::tail() = previous_;
}

LogScope::LogScope(const LogSink& sink, unsigned core) noexcept : previous_sink_(t_sink), previous_core_(t_core) {
  t_sink = &sink;
  t_core = core;
}

LogScope::~LogScope() {
  t_sink = previous_sink_;
  t_core = previous_core_;
}

void log_text_about(LogLevel level, unsigned core, std::string_view text) noexcept {
  const LogRecord record{level, core, text};
  if (t_in_sink) {
    write_log_to_stderr(record);
    return;
  }
  t_in_sink = true;
  if (const LogSink* sink = t_sink) {
    if (*sink) call_sink(*sink, record);
    else write_log_to_stderr(record);
  } else {
    FallbackLogList::dispatch(record);
  }
  t_in_sink = false;
}

void log_text(LogLevel level, std::string_view text) noexcept { log_text_about(level, t_core, text); }

void log(LogLevel level, const char* format, ...) noexcept {
  char line[kLogLineBytes];
  std::va_list args;
  va_start(args, format);
  const int n = std::vsnprintf(line, sizeof line, format, args);
  va_end(args);
  if (n < 0) {
    log_text(level, format);  // an encoding error: the format says at least where
    return;
  }
  std::size_t size = static_cast<std::size_t>(n);
  if (size >= sizeof line) {
    size = sizeof line - 1;
    std::memcpy(line + size - 3, "...", 3);
  }
  log_text(level, std::string_view(line, size));
}

}  // namespace detail
}  // namespace aem
