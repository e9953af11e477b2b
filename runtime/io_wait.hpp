// io_wait.hpp — one operation issued from a capsule: the capsule suspends until the operation's
// completion arrives. The completion record lives in the capsule's frame of this call, and the
// capsule does not return until the final completion has arrived — also when the deadline
// cancelled the operation or the runtime is shutting down — so neither the record nor the
// caller's buffer can be freed under the kernel.
#pragma once

#include "io/backend.hpp"

#include <aem/time.hpp>

namespace aem::detail {

// perform issues `request` on the calling capsule's core and suspends the capsule until it
// completes. Returns the result (-errno on failure; -ECANCELED when `deadline` passed first or
// the runtime cancelled it at shutdown), -EPERM outside a capsule, -ESHUTDOWN while the
// runtime stops. Call from a capsule.
int perform(const IoRequest& request, Deadline deadline) noexcept;

}  // namespace aem::detail
