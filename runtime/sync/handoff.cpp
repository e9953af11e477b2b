// handoff.cpp — detail::await_handoff, the one wait of the hand-off protocol (handoff.hpp).
#include "runtime/sync/handoff.hpp"

#include <aem/capsule.hpp>
#include <aem/detail/cpu_relax.hpp>

#include <thread>

namespace aem::detail {

std::error_code inline_refusal() noexcept { return refused_inline(); }

void await_handoff(const std::atomic<bool>& released) noexcept {
  // The notifier runs on another thread (a capsule on our own core cannot be between its pop
  // and its notify(): it does not suspend there), a few instructions from setting the flag.
  for (unsigned spins = 0; !released.load(std::memory_order_acquire); ++spins) {
    if (spins < 128) {
      cpu_relax();
    } else {
      this_capsule::yield();     // let this core's other capsules run
      std::this_thread::yield();  // and the notifier's thread, if it shares our CPU
    }
  }
}

}  // namespace aem::detail
