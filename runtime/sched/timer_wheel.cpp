// timer_wheel.cpp — the cold paths of TimerWheel: construction, cascading, partial slots.
#include "runtime/sched/timer_wheel.hpp"

#include <initializer_list>

namespace aem::detail {

TickDivider::TickDivider(std::uint64_t d) noexcept {
  assert(d > 0);
  const auto floor_log2 = static_cast<unsigned>(63 - std::countl_zero(d));
  if ((d & (d - 1)) == 0) {
    magic_ = 0;
    shift_ = floor_log2;
    return;
  }
  // m = floor(2^(64 + floor_log2) / d) fits in 64 bits because 2^floor_log2 < d.
  __extension__ using u128 = unsigned __int128;
  const u128 numerator = static_cast<u128>(1) << (64 + floor_log2);
  auto m = static_cast<std::uint64_t>(numerator / d);
  const auto rem = static_cast<std::uint64_t>(numerator % d);
  if (d - rem < (std::uint64_t{1} << floor_log2)) {
    add_ = false;
  } else {
    // The 64-bit magic is not precise enough: use the 65-bit one, whose top bit is
    // supplied by the add-and-halve step in divide(). The doubling wraps on purpose.
    m += m;
    const std::uint64_t twice_rem = rem + rem;
    if (twice_rem >= d || twice_rem < rem) m += 1;
    add_ = true;
  }
  magic_ = m + 1;
  shift_ = floor_log2;
}

TimerWheel::TimerWheel(std::chrono::nanoseconds tick, Clock::time_point start) noexcept
    : origin_(start.time_since_epoch().count()),
      tick_ns_(tick.count() > 0 ? static_cast<std::uint64_t>(tick.count()) : 1),
      div_(tick_ns_) {
  for (TimerNode& head : buckets_) {
    head.next = &head;
    head.prev = &head;
    head.deadline = Clock::time_point::max();
  }
}

void TimerWheel::clear() noexcept {
  assert(defer_below_ == 0 && "clear() called from inside on_expire");
  for (TimerNode& head : buckets_) {
    TimerNode* node = head.next;
    while (node != &head) {
      TimerNode* const next = node->next;
      node->next = nullptr;
      node->prev = nullptr;
      node = next;
    }
    head.next = &head;
    head.prev = &head;
  }
  for (std::uint64_t& bits : occ_) bits = 0;
  levels_ = 0;
  size_ = 0;
}

void TimerWheel::take_all(unsigned slot) noexcept {
  TimerNode& head = buckets_[slot];
  TimerNode& firing = buckets_[kFiring];
  assert(firing.next == &firing && head.next != &head);
  firing.next = head.next;
  firing.prev = head.prev;
  head.next->prev = &firing;
  head.prev->next = &firing;
  head.next = &head;
  head.prev = &head;
  mark_empty(slot);
}

void TimerWheel::take_due(unsigned slot, Clock::time_point now) noexcept {
  TimerNode& head = buckets_[slot];
  TimerNode& firing = buckets_[kFiring];
  Clock::time_point earliest = Clock::time_point::max();
  TimerNode* node = head.next;
  while (node != &head) {
    TimerNode* const next = node->next;
    if (node->deadline <= now) {
      node->prev->next = next;
      next->prev = node->prev;
      link_tail(firing, *node);
    } else if (node->deadline < earliest) {
      earliest = node->deadline;
    }
    node = next;
  }
  if (head.next == &head) {
    mark_empty(slot);
  } else {
    head.deadline = earliest;
  }
}

void TimerWheel::cascade(unsigned level, unsigned slot) noexcept {
  TimerNode& head = buckets_[level * kSlots + slot];
  TimerNode* node = head.next;
  head.prev->next = nullptr;  // terminate the detached chain
  head.next = &head;
  head.prev = &head;
  mark_empty(level * kSlots + slot);
  // cur_ is the slot's first tick, so every node lands on a lower level, never back here,
  // and nodes of one tick stay in their arming order.
  while (node != nullptr) {
    TimerNode* const next = node->next;
    assert(node->tick >= cur_);
    place(*node, node->tick);
    node = next;
  }
}

void TimerWheel::fix_staged(Clock::time_point now) noexcept {
  TimerNode& head = buckets_[kStaged];
  TimerNode* node = head.next;
  head.prev->next = nullptr;  // terminate the detached chain
  head.next = &head;
  head.prev = &head;
  const std::int64_t from = now.time_since_epoch().count();
  while (node != nullptr) {
    TimerNode* const next = node->next;
    const std::int64_t delay = node->deadline.time_since_epoch().count();
    std::int64_t at = 0;
    if (__builtin_add_overflow(from, delay, &at)) {
      at = delay > 0 ? Clock::time_point::max().time_since_epoch().count() : Clock::time_point::min().time_since_epoch().count();
    }
    node->deadline = Clock::time_point(Clock::duration(at));
    file(*node);
    node = next;
  }
}

void TimerWheel::finish_advance() noexcept {
  defer_below_ = 0;
  // Nodes still on the firing list were due (a callback threw): they keep their place ahead
  // of the deferred ones, and both go to the current position or later.
  for (const unsigned list : {kFiring, kDeferred}) {
    TimerNode& head = buckets_[list];
    TimerNode* node = head.next;
    if (node == &head) continue;
    head.prev->next = nullptr;
    head.next = &head;
    head.prev = &head;
    while (node != nullptr) {
      TimerNode* const next = node->next;
      if (node->tick < cur_) node->tick = cur_;
      place(*node, node->tick);
      node = next;
    }
  }
}

}  // namespace aem::detail
