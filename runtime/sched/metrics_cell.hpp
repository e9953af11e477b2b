// metrics_cell.hpp — where one core keeps its metrics so that any thread can read them.
//
// Counters are relaxed atomics written only by the owning core (a load and a store, no locked
// instruction) and read by anyone. Gauges that only the owner can compute (queue depths, arena
// and pool state) are published on request: a reader takes a ticket, wakes the core, and the
// core publishes them at the start of its next loop turn and marks the ticket served. Nothing
// here is touched on the capsule switch path: the core counts once per loop turn.
#pragma once

#include <aem/metrics.hpp>
#include <aem/priority.hpp>
#include <aem/time.hpp>

#include <atomic>
#include <cstdint>

namespace aem::detail {

class MetricsCell {
 public:
  // ---- counting: call on the owning core's thread only.

  // count_activation counts `n` activations of a registration of priority `p` (event table).
  void count_activation(Priority p, std::uint64_t n = 1) noexcept { add(per_level_[kActivations][level(p)], n); }
  // count_delivery counts one activation whose handler was started (event table).
  void count_delivery(Priority p) noexcept { add(per_level_[kDeliveries][level(p)], 1); }
  // count_lost counts `n` activations that could not be kept and were reported lost (event table).
  void count_lost(Priority p, std::uint64_t n = 1) noexcept { add(per_level_[kLost][level(p)], n); }
  // count_priority_boost counts a capsule raised above the priority it had.
  void count_priority_boost() noexcept { add(counters_[kPriorityBoosts], 1); }
  // count_loop_turn counts one turn of the core's loop.
  void count_loop_turn() noexcept { add(counters_[kLoopTurns], 1); }
  // add_idle adds time the core slept in the kernel.
  void add_idle(Duration slept) noexcept { add_time(kIdleNs, slept); }
  // add_spin adds time the core polled for work before it slept (or found some).
  void add_spin(Duration polled) noexcept { add_time(kSpinNs, polled); }
  // count_blocking_call / _timeout / _refusal count aem::blocking calls of the core's capsules:
  // handed to the pool, given up at their deadline, refused with the queue full.
  void count_blocking_call() noexcept { add(counters_[kBlockingCalls], 1); }
  void count_blocking_timeout() noexcept { add(counters_[kBlockingTimeouts], 1); }
  void count_blocking_refusal() noexcept { add(counters_[kBlockingRefusals], 1); }
  // note_blocking_queue_wait keeps the longest time a call waited for a pool thread.
  void note_blocking_queue_wait(Duration waited) noexcept {
    const auto ns = static_cast<std::uint64_t>(waited.count() > 0 ? waited.count() : 0);
    if (ns > counters_[kBlockingWaitMaxNs].load(std::memory_order_relaxed)) {
      counters_[kBlockingWaitMaxNs].store(ns, std::memory_order_relaxed);
    }
  }

  // count_stall / note_stall: a stall of the core, and its length so far (the longest is kept).
  // Written by the runtime's stall watchdog thread only (runtime/diag), not by the core.
  void count_stall() noexcept { add(counters_[kStalls], 1); }
  void note_stall(Duration stalled) noexcept {
    const auto ns = static_cast<std::uint64_t>(stalled.count() > 0 ? stalled.count() : 0);
    if (ns > counters_[kStallMaxNs].load(std::memory_order_relaxed)) counters_[kStallMaxNs].store(ns, std::memory_order_relaxed);
  }

  // ---- publishing (owner) and reading (any thread).

  // request takes a ticket for a fresh publication; the caller then wakes the core. Any thread.
  std::uint64_t request() noexcept { return requests_.fetch_add(1, std::memory_order_seq_cst) + 1; }
  // requested tells the owner that a reader waits for a publication.
  bool requested() const noexcept {
    return requests_.load(std::memory_order_relaxed) != served_.load(std::memory_order_relaxed);
  }
  // publish stores the gauges of `now` (and its owner-computed counters, see metrics_cell.cpp) and
  // serves every ticket taken before it. Owner only.
  void publish(const CoreMetrics& now) noexcept;
  // served tells whether a publication after ticket `ticket` was taken has happened. Any thread.
  bool served(std::uint64_t ticket) const noexcept { return served_.load(std::memory_order_acquire) >= ticket; }
  // serving is set while the core runs its loop, so it will answer a request. Owner sets it.
  void set_serving(bool on) noexcept { serving_.store(on, std::memory_order_seq_cst); }
  bool serving() const noexcept { return serving_.load(std::memory_order_seq_cst); }
  // read assembles the counters and the last published gauges of core `core`. Any thread.
  CoreMetrics read(unsigned core) const noexcept;

 private:
  enum Counter : unsigned {
    kPriorityBoosts, kLoopTurns, kIdleNs, kSpinNs,
    kBlockingCalls, kBlockingTimeouts, kBlockingRefusals, kBlockingWaitMaxNs, kStalls, kStallMaxNs, kCounters
  };
  enum PerLevel : unsigned { kActivations, kDeliveries, kLost, kPending, kPerLevel };
  static constexpr unsigned kPublished = 15;  // the fields of metrics_cell.cpp's kPublishedFields

  static unsigned level(Priority p) noexcept { return static_cast<unsigned>(p) & (kPriorityLevels - 1); }
  static void add(std::atomic<std::uint64_t>& counter, std::uint64_t n) noexcept {
    counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  // add_time adds a positive duration, in nanoseconds, to `counter`.
  void add_time(Counter counter, Duration d) noexcept {
    if (d.count() > 0) add(counters_[counter], static_cast<std::uint64_t>(d.count()));
  }

  alignas(64) std::atomic<std::uint64_t> counters_[kCounters] = {};
  std::atomic<std::uint64_t> per_level_[kPerLevel][kPriorityLevels] = {};
  std::atomic<std::uint64_t> ready_[kPriorityLevels] = {};
  std::atomic<std::uint64_t> published_[kPublished] = {};
  std::atomic<std::uint64_t> served_{0};
  std::atomic<bool> serving_{false};
  alignas(64) std::atomic<std::uint64_t> requests_{0};  // readers write it: a line of its own
};

}  // namespace aem::detail
