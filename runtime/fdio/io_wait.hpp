// io_wait.hpp — one operation issued from a capsule: the capsule suspends until the operation's
// completion arrives. The completion record lives in the capsule's frame of this call, and the
// capsule does not return until the final completion has arrived — also when the deadline
// cancelled the operation, another capsule cancelled it, or the runtime is shutting down — so
// neither the record nor the caller's buffer can be freed under the kernel.
#pragma once

#include "io/backend.hpp"

#include <aem/detail/shared_fd.hpp>
#include <aem/time.hpp>

namespace aem::detail {

// perform's own results. They lie outside the errno range, so an EPERM or ESHUTDOWN that the
// kernel reports is not mistaken for them.
inline constexpr int kNotInCapsule = -0x10001;
inline constexpr int kShuttingDown = -0x10002;
inline constexpr int kInlineBlocked = -0x10003;  // from an inline handler, on the dispatcher

// perform issues `request` on the calling capsule's core and suspends the capsule until it
// completes. Returns the result (-errno on failure; -ECANCELED when `deadline` passed first,
// the runtime cancelled it at shutdown, or `cancel` was requested), kNotInCapsule outside a
// capsule (kInlineBlocked in an inline handler), kShuttingDown while the runtime stops.
// `cancel`, if given, is already linked where
// cancellers find it (SharedFd::enter), with its capsule set. Call from a capsule.
int perform(const IoRequest& request, Deadline deadline, IoCancelSlot* cancel = nullptr) noexcept;

}  // namespace aem::detail
