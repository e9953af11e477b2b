// idle_spin.hpp — how long an idle core polls for work before it sleeps in the kernel.
//
// A poll that ends with work saves a sleep and a wake-up; one that ends in a sleep anyway is
// CPU thrown away, and on a server held to a CPU quota it is served requests thrown away. The
// window adapts the way KVM's halt polling does (virt/kvm/kvm_main.c, grow_halt_poll_ns /
// shrink_halt_poll_ns): an idle stretch that a longer poll, up to Config::idle_spin, would have
// caught grows the window; one longer than Config::idle_spin (no poll up to the limit could
// have caught it) shrinks it, down to no poll at all. A stretch the poll caught leaves it alone.
#pragma once

#include <aem/time.hpp>

#include <algorithm>

namespace aem::detail {

class IdleSpin {
 public:
  // The window starts at `limit` (Config::idle_spin): a core that idles briefly polls from its
  // first idle stretch on. A limit of 0 never polls.
  explicit IdleSpin(Duration limit) noexcept : limit_(std::max(limit, Duration::zero())), window_(limit_) {}

  // window is how long the next idle stretch polls before it sleeps.
  Duration window() const noexcept { return window_; }

  // slept adapts the window after an idle stretch that polled the whole window (possibly
  // none) and then slept: `idle` is the time from the start of the poll to the wake-up.
  void slept(Duration idle) noexcept {
    if (idle > limit_) {
      window_ /= kFactor;
      if (window_ < start()) window_ = Duration::zero();
    } else if (window_ < limit_) {
      window_ = std::min(limit_, std::max(window_ * kFactor, start()));
    }
  }

 private:
  static constexpr int kFactor = 2;
  // A window that grows from none starts at a quarter of the limit; one that shrinks below
  // that stops polling.
  Duration start() const noexcept { return limit_ / 4; }

  Duration limit_;
  Duration window_;
};

}  // namespace aem::detail
