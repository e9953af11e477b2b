// io_wait.hpp — one io_uring operation issued from a capsule: the capsule suspends until the
// operation's completion arrives. The completion record lives in the capsule's frame of this
// call, and the capsule does not return until the CQE has arrived — also when the deadline
// cancelled the operation or the runtime is shutting down — so neither the record nor the
// caller's buffer can be freed under the kernel.
#pragma once

#include "io/uring_backend.hpp"

#include <aem/time.hpp>

#include <cerrno>
#include <linux/time_types.h>

namespace aem::detail {

struct CapsuleControl;

// IoWait is the completion record of one awaited operation.
struct IoWait {
  Completion completion;
  CapsuleControl* capsule = nullptr;
  int result = 0;
  bool done = false;
  __kernel_timespec timeout{};
};

// io_begin prepares a submission entry for the calling capsule's operation (the caller fills
// in the operation with io_uring_prep_*). Returns nullptr with `error` = -errno when called
// outside a capsule (-EPERM) or while the runtime stops (-ECANCELED).
io_uring_sqe* io_begin(IoWait& wait, int& error) noexcept;

// io_finish links the deadline (if any) to the prepared entry, suspends until the completion
// arrives and returns its result (cqe->res: -ECANCELED when the deadline passed first).
int io_finish(IoWait& wait, io_uring_sqe* sqe, Deadline deadline) noexcept;

}  // namespace aem::detail
