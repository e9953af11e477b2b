// backend_factory.hpp — which backend a core gets: io_uring, or the epoll fallback where
// io_uring cannot be used.
#pragma once

#include "io/backend.hpp"

#include <aem/config.hpp>
#include <aem/result.hpp>

#include <memory>
#include <system_error>

namespace aem::detail {

// io_uring_refused tells whether io_uring set-up failed because io_uring is unavailable here
// (and not for a lack of resources): ENOSYS (no kernel support, or a seccomp filter that
// hides it), EPERM (kernel.io_uring_disabled, or seccomp), EACCES (an LSM policy).
bool io_uring_refused(std::error_code error) noexcept;

// validate_ring_sizes checks `sizes` against Config::ring_entries' and Config::cq_entries'
// documented ranges: sq a power of two up to kMaxRingEntries, cq 0 or a power of two from sq
// up to kMaxCqEntries. Errors: errc::invalid_argument.
Result<void> validate_ring_sizes(RingSizes sizes) noexcept;

// create_backend makes a core's backend of `kind` on the calling thread (the core's):
// `automatic` tries io_uring with `sizes` and falls back to epoll when io_uring is refused (see
// io_uring_refused); `io_uring` and `epoll` make exactly that one. Every kind validates
// `sizes` first, so a Config is accepted or refused alike on either backend.
// Errors: errc::invalid_argument (sizes), those of UringBackend::create or EpollBackend::create.
Result<std::unique_ptr<Backend>> create_backend(BackendKind kind, RingSizes sizes) noexcept;

}  // namespace aem::detail
