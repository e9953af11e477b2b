// accept_backoff.hpp — what an accept does when the process runs out of descriptors or memory:
// accepting again at once would fail again at once and only spin, so it pauses (as nginx does)
// for a back-off that starts at 1 ms and doubles up to 128 ms while the shortage lasts. Shared
// by the event layer's multishot accepts and the blocking-style listeners.
#pragma once

#include "base/log.hpp"

#include <aem/time.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace aem::detail {

inline constexpr Duration kFirstAcceptBackoff = std::chrono::milliseconds(1);
inline constexpr Duration kMaxAcceptBackoff = std::chrono::milliseconds(128);

// fd_exhausted tells whether an accept's `error` (a positive errno) is a shortage of
// descriptors or memory, after which accepting again at once would only spin.
inline bool fd_exhausted(int error) noexcept {
  return error == EMFILE || error == ENFILE || error == ENOMEM || error == ENOBUFS;
}

// next_accept_backoff is the pause after `previous` (zero: the first of a shortage).
inline Duration next_accept_backoff(Duration previous) noexcept {
  return previous == Duration::zero() ? kFirstAcceptBackoff : std::min(kMaxAcceptBackoff, previous * 2);
}

// log_accept_shortage reports that accepting on listener `fd` has begun to pause for `error`
// (a positive errno that fd_exhausted accepts): once per shortage, not once per pause, so a
// long shortage does not flood the log. Formatted without allocating (memory may be short).
inline void log_accept_shortage(int fd, int error) noexcept {
  const bool descriptors = error == EMFILE || error == ENFILE;
  log(LogLevel::warning,
      "listener fd %d: accept failed for want of %s (%s); accepts pause %lld ms, doubling up to %lld ms, until "
      "one succeeds",
      fd, descriptors ? "file descriptors" : "memory", strerrorname_np(error),
      static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(kFirstAcceptBackoff).count()),
      static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(kMaxAcceptBackoff).count()));
}

}  // namespace aem::detail
