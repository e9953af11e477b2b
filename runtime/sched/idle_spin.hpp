// idle_spin.hpp — how long an idle core polls for work before it sleeps in the kernel.
//
// A poll that ends with work saves a sleep and a wake-up; one that ends in a sleep anyway is
// CPU thrown away, and on a server held to a CPU quota it is served requests thrown away. The
// window adapts the way KVM's halt polling does (virt/kvm/kvm_main.c, grow_halt_poll_ns /
// shrink_halt_poll_ns): an idle stretch that a longer poll, up to Config::idle_spin, would have
// caught grows the window; one longer than Config::idle_spin (no poll up to the limit could
// have caught it) shrinks it, down to no poll at all. A stretch the poll caught leaves it alone.
//
// Where waking a sleeping thread takes longer than the limit (on a VM, a wake-up of the other
// CPU's thread costs ~25 us), the time from the poll's start to the wake-up says nothing about
// when the work came: a message that arrived 1 us into the sleep still looks like an idle
// stretch longer than the limit, every stretch shrinks the window, and once it is none every
// message pays a full sleep and wake-up. Two things keep it from locking itself there:
//  * woken(): a sleep ended by another thread's wake-up is judged by when that thread found
//    the core asleep (the message's arrival), not by when the core woke. Its difference to the
//    wake-up is the wake-up latency, which is learnt.
//  * awaiting_window(): when a capsule of the core waits for a reply from another core, the
//    core polls until the limit plus the learnt wake-up latency have passed since the wait
//    began: a reply from a core that must first be woken comes that late. A caught reply lets
//    the capsule send the other core's next message at once, so that core's window grows
//    again too. A reply later than that is overdue, and the core polls as usual.
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

  // awaiting_window is how long after the start of a wait for another core's reply the core
  // keeps polling: at least window(), and the limit plus the learnt wake-up latency (none
  // while the limit is 0).
  Duration awaiting_window() const noexcept {
    return limit_ == Duration::zero() ? limit_ : std::max(window_, limit_ + wake_latency_);
  }

  // wake_latency is the learnt time from another thread's wake-up of the sleeping core to the
  // core running again (zero until a wake-up was seen).
  Duration wake_latency() const noexcept { return wake_latency_; }

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

  // woken is slept() for a sleep that another thread ended because work arrived for the core
  // `arrival` after the start of the poll (arrival <= idle): the window adapts to the arrival,
  // which is what a poll would have had to wait for, and idle - arrival is a sample of the
  // wake-up latency.
  void woken(Duration idle, Duration arrival) noexcept {
    arrival = std::clamp(arrival, Duration::zero(), idle);
    const Duration latency = std::min(idle - arrival, kLatencyCap * limit_);
    // A moving average over ~4 samples: one slow wake-up (a preempted thread) does not
    // stretch every poll that follows.
    wake_latency_ = wake_latency_ == Duration::zero() ? latency : (3 * wake_latency_ + latency) / 4;
    slept(arrival);
  }

 private:
  static constexpr int kFactor = 2;
  // The learnt latency counts at most this many limits: a poll while awaiting a reply lasts no
  // longer than (1 + kLatencyCap) * limit however slow the wake-ups.
  static constexpr int kLatencyCap = 8;
  // A window that grows from none starts at a quarter of the limit; one that shrinks below
  // that stops polling.
  Duration start() const noexcept { return limit_ / 4; }

  Duration limit_;
  Duration window_;
  Duration wake_latency_{};
};

}  // namespace aem::detail
