// diag_helpers.hpp — what the diagnostics tests share: a log sink that keeps what it receives,
// and functions that stay on the stack (never inlined, never tail-called) so that backtraces
// name them.
#pragma once

#include <aem/config.hpp>
#include <aem/log.hpp>

#include <mutex>
#include <string>
#include <vector>

namespace aem_test {

// KeptLog is a LogSink target: it copies every record.
struct KeptLog {
  struct Entry {
    aem::LogLevel level;
    unsigned core;
    std::string message;
  };
  std::mutex mutex;
  std::vector<Entry> entries;

  aem::LogSink sink() {
    return [this](const aem::LogRecord& record) {
      std::lock_guard lock(mutex);
      entries.push_back({record.level, record.core, std::string(record.message)});
    };
  }
  // containing returns the messages that contain `needle`.
  std::vector<std::string> containing(const std::string& needle) {
    std::lock_guard lock(mutex);
    std::vector<std::string> found;
    for (const Entry& entry : entries) {
      if (entry.message.find(needle) != std::string::npos) found.push_back(entry.message);
    }
    return found;
  }
};

// kDiagSanitizedThreads: ThreadSanitizer delivers a signal only when the thread reaches one of
// its interceptors, which a spinning loop may never do; its stall reports may lack a backtrace.
#if defined(__SANITIZE_THREAD__)
inline constexpr bool kDiagSanitizedThreads = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
inline constexpr bool kDiagSanitizedThreads = true;
#else
inline constexpr bool kDiagSanitizedThreads = false;
#endif
#else
inline constexpr bool kDiagSanitizedThreads = false;
#endif

}  // namespace aem_test

// AEM_KEEP_FRAME ends a function that must stay on the stack below what it called.
#define AEM_KEEP_FRAME() asm volatile("" ::: "memory")
