// accept_backoff.hpp — what an accept does when the process runs out of descriptors or memory:
// accepting again at once would fail again at once and only spin, so it pauses (as nginx does)
// for a back-off that starts at 1 ms and doubles up to 128 ms while the shortage lasts. Shared
// by the event layer's multishot accepts and the blocking-style listeners.
#pragma once

#include <aem/time.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>

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

}  // namespace aem::detail
