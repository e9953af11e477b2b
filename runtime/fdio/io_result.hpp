// io_result.hpp — turning what perform() returns into the public API's error codes, shared by
// every blocking I/O call (fd_io, sockets) so they all report the same error for the same cause.
#pragma once

#include "runtime/fdio/io_wait.hpp"

#include <aem/error.hpp>
#include <aem/result.hpp>
#include <aem/time.hpp>

#include <cerrno>
#include <cstddef>

namespace aem::detail {

// io_error maps a negative result of perform(). -ECANCELED has three causes, told apart here:
// a cancel that was requested (errc::cancelled), the deadline (errc::timed_out), or the
// runtime cancelling every operation because it is shutting down.
inline std::error_code io_error(int result, Deadline deadline, bool cancel_requested = false) noexcept {
  switch (result) {
    case kNotInCapsule: return make_error_code(errc::not_in_capsule);
    case kInlineBlocked: return make_error_code(errc::inline_handler_blocked);
    case kShuttingDown: return make_error_code(errc::shutting_down);
    case -ECANCELED:
      if (cancel_requested) return make_error_code(errc::cancelled);
      return make_error_code(deadline.expired() ? errc::timed_out : errc::shutting_down);
    default: return errno_code(result);
  }
}

// io_count maps the result of a transfer: a byte count, or the error.
inline Result<std::size_t> io_count(int result, Deadline deadline, bool cancel_requested = false) {
  if (result >= 0) return static_cast<std::size_t>(result);
  return io_error(result, deadline, cancel_requested);
}

}  // namespace aem::detail
