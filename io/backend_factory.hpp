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

// create_backend makes a core's backend of `kind` on the calling thread (the core's):
// `automatic` tries io_uring with `ring_entries` and falls back to epoll when io_uring is
// refused (see io_uring_refused); `io_uring` and `epoll` make exactly that one.
// Errors: those of UringBackend::create or EpollBackend::create.
Result<std::unique_ptr<Backend>> create_backend(BackendKind kind, unsigned ring_entries) noexcept;

}  // namespace aem::detail
