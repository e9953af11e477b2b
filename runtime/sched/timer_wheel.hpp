// timer_wheel.hpp — the per-core hierarchical timing wheel (internal, not public API).
//
// Each scheduler core owns one TimerWheel and is the only thread that ever touches it, so
// nothing here is atomic or locked. The core loop calls advance(now) once per turn to
// collect expired timers and next_wakeup() to learn how long it may block in the kernel.
//
// Layout. Time is counted in ticks since the wheel's origin (tick = floor((t - origin) /
// resolution), a full 64-bit range). The wheel has 11 levels of 64 slots; a node whose tick
// first differs from the wheel position `cur_` in bit group k (bits 6k..6k+5) lives at level
// k, in the slot given by that group. So level 0 holds the ticks of the current 64-tick
// block, level 1 the rest of the current 4096-tick block, and so on up to level 10, which
// covers the whole 64-bit tick space: there is no overflow bucket and no deadline is too far.
// Each slot is a circular doubly-linked list of intrusive TimerNodes hung off a sentinel, and
// each level has a 64-bit occupancy bitmap; one more bitmap records which levels are
// non-empty. Because every node at level k shares all bit groups above k with `cur_`, the
// lowest occupied slot of the lowest occupied level is always the earliest work item: finding
// it costs two countr_zero, no matter how far away it is (long idle periods are skipped in
// one step, not tick by tick).
//
// Each slot's sentinel also keeps a lower bound of the deadlines in the slot (exact except
// after cancels), which is what lets advance() fire on the exact deadline instead of on tick
// boundaries, next_wakeup() answer in O(1), and advance() return immediately when nothing is
// due. A higher-level slot is cascaded (re-distributed to lower levels) only once one of its
// nodes may be due, so most far timers move down the wheel only once or twice.
#pragma once

#include <bit>
#include <cassert>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <ratio>
#include <type_traits>

namespace aem::detail {

using Clock = std::chrono::steady_clock;

// TimerNode is the intrusive hook that an owner (a sleeping capsule, a timer registration...)
// embeds to be put on a TimerWheel. The wheel never allocates: a node lives exactly as long as
// its owner makes it live, and must not be moved, copied or destroyed while armed() on a
// live wheel. 32 bytes.
struct TimerNode {
  TimerNode* next = nullptr;      // slot list links; next == nullptr means "not armed"
  TimerNode* prev = nullptr;
  Clock::time_point deadline{};   // what the owner asked for; set by TimerWheel::arm()
  std::uint64_t tick = 0;         // internal: the wheel tick the node is filed under

  // armed() returns true while the node is on a wheel (between arm() and its cancel() or the
  // moment advance() unlinks it to report it).
  bool armed() const noexcept { return next != nullptr; }
};

// TickDivider divides 64-bit nanosecond offsets by the wheel resolution with a multiply and
// shifts (the libdivide "u64" scheme): a hardware 64-bit division costs 20-90 cycles on
// many x86 cores, as much as the rest of arm() together. Exact for every numerator.
class TickDivider {
 public:
  // TickDivider() prepares division by d. Preconditions: d > 0.
  explicit TickDivider(std::uint64_t d) noexcept;

  // divide() returns floor(n / d).
  std::uint64_t divide(std::uint64_t n) const noexcept {
    if (magic_ == 0) return n >> shift_;  // d is a power of two
    __extension__ using u128 = unsigned __int128;
    const auto q = static_cast<std::uint64_t>((static_cast<u128>(magic_) * n) >> 64);
    if (!add_) return q >> shift_;
    return (((n - q) >> 1) + q) >> shift_;
  }

 private:
  std::uint64_t magic_ = 0;
  unsigned shift_ = 0;
  bool add_ = false;
};

// TimerWheel is a single-threaded hierarchical timing wheel holding any number of TimerNodes.
// arm() and cancel() are O(1) and allocation-free; advance() costs O(1) per reported node
// plus O(1) per slot it has to cascade, never a walk over idle ticks; next_wakeup() is O(1).
//
// Guarantees:
//  * advance(now) reports exactly the nodes whose deadline <= now (comparing the exact
//    deadline, not its tick), except nodes armed by its own callbacks, which are left for the
//    next advance(). So a node is never reported early, and it is reported late only by as
//    much as the caller is late in calling advance(). The resolution does not delay
//    anything; it only sets the slot granularity (see the constructor).
//  * Any deadline works, from time_point::min() to time_point::max(). A deadline before the
//    wheel's current position is treated as being at that position: it is due at the next
//    advance().
//  * Order within one advance(): by tick (floor((deadline - origin) / resolution), raised to
//    the wheel position for deadlines already in the past when armed), and within a tick in
//    arming order (FIFO). Deadlines inside the same tick are not sorted among themselves.
//
// Memory: ~23 KB of slot sentinels, embedded in the object (no heap). Not copyable or movable:
// armed nodes point into it.
class TimerWheel {
 public:
  // TimerWheel() creates an empty wheel with the given resolution (clamped to >= 1 ns) whose
  // tick 0 starts at `start`. The tick never delays a node (see advance()); a finer one means
  // more cascading steps per node, a coarser one longer slots to scan when advance() lands
  // in the middle of a tick that is only partly due.
  explicit TimerWheel(std::chrono::nanoseconds tick = std::chrono::microseconds(50),
                      Clock::time_point start = Clock::now()) noexcept;

  // ~TimerWheel() destroys the wheel without touching any node, so nodes may die before or
  // after it. Nodes still armed are abandoned: their links dangle and armed() stays true,
  // so they must not be passed to cancel() again; call clear() first to reuse them.
  ~TimerWheel() = default;

  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;

  // arm() files `node` to be reported by the first advance() whose `now` >= deadline.
  // Preconditions: !node.armed(); node stays at the same address until it is cancelled or
  // reported. O(1), no allocation. May be called from the owning thread, including from an
  // advance() callback (then the node is reported no earlier than the next advance()).
  void arm(TimerNode& node, Clock::time_point deadline) noexcept {
    assert(!node.armed());
    node.deadline = deadline;
    ++size_;
    file(node);
  }

  // arm_after() files `node` to be reported `delay` after the wheel's next reading of the time,
  // without reading the clock now (a clock read costs as much as the rest of arming a timer,
  // and most timers are cancelled before they fire). The next advance(now) or next_wakeup()
  // fixes the node's deadline as `now + delay` (next_wakeup() reads Clock::now() for it), so
  // the node is never reported before `delay` has passed since this call; it is reported
  // later by the time between this call and that reading. Saturates instead of overflowing.
  // Preconditions and callers: as arm(); until the deadline is fixed, node.deadline holds
  // `delay` since the epoch.
  void arm_after(TimerNode& node, Clock::duration delay) noexcept {
    assert(!node.armed());
    node.deadline = Clock::time_point(delay);
    node.tick = 0;
    ++size_;
    link_tail(buckets_[kStaged], node);
  }

  // cancel() unlinks `node` if it is armed and returns whether it was; a node that is not
  // armed (never armed, already cancelled, or already reported) is left alone. O(1). May be
  // called from the owning thread, including from an advance() callback, where cancelling a
  // node that is due in the same advance() guarantees it is not reported.
  bool cancel(TimerNode& node) noexcept {
    TimerNode* const next = node.next;
    if (next == nullptr) return false;
    TimerNode* const prev = node.prev;
    prev->next = next;
    next->prev = prev;
    node.next = nullptr;
    node.prev = nullptr;
    --size_;
    // prev == next only when `node` was alone in its list, and then both are the sentinel.
    if (prev == next) mark_empty(static_cast<unsigned>(prev - buckets_));
    return true;
  }

  // advance() moves the wheel to `now` and calls on_expire(TimerNode&) once for every armed
  // node whose deadline <= now, in the order documented on the class, and returns how many it
  // reported. Each node is unlinked (armed() == false) before its callback runs. Callbacks
  // may arm and cancel any node, re-arm the node being reported, and cancel nodes due in the
  // same advance() (those are then not reported); nodes they arm are reported no earlier
  // than the next advance(). A `now` earlier than a previous one is allowed and reports only
  // nodes due by that `now`. Cost: O(1) when nothing is due; otherwise O(1) per reported
  // node and per cascaded slot, plus a scan of the current tick's slot when only part of it
  // is due. Must be called from the owning thread, not from inside on_expire. If on_expire
  // throws, the wheel stays consistent: unreported nodes stay armed.
  template <typename F>
  std::size_t advance(Clock::time_point now, F&& on_expire);

  // next_wakeup() returns a time at or before the earliest deadline of any armed node (it is
  // exact unless the earliest slot lost its earliest node to cancel(); an early answer only
  // costs the caller an advance() that reports nothing and a second question), or
  // time_point::max() when nothing is armed. Right after advance(now) it is later than `now`
  // unless a callback armed a node that is already due, so a core loop that sleeps until
  // next_wakeup() never spins. O(1), no list scans, except that nodes armed by arm_after()
  // since the last reading get their deadline first (reading Clock::now(), O(1) per node).
  // Nodes being reported by a running advance() are not counted.
  Clock::time_point next_wakeup() noexcept {
    if (staged()) [[unlikely]] fix_staged(Clock::now());
    Clock::time_point best = Clock::time_point::max();
    if (levels_ != 0) {
      const auto level = static_cast<unsigned>(std::countr_zero(levels_));
      const auto slot = static_cast<unsigned>(std::countr_zero(occ_[level]));
      best = buckets_[level * kSlots + slot].deadline;
    }
    const TimerNode& deferred = buckets_[kDeferred];
    if (deferred.next != &deferred && deferred.deadline < best) best = deferred.deadline;
    return best;
  }

  // clear() disarms every armed node without reporting it (their armed() turns false).
  // O(armed nodes). Must be called from the owning thread, not from inside on_expire.
  void clear() noexcept;

  // size() returns the number of armed nodes.
  std::size_t size() const noexcept { return size_; }

  // empty() returns size() == 0.
  bool empty() const noexcept { return size_ == 0; }

  // resolution() returns the tick length the wheel was created with (after clamping).
  std::chrono::nanoseconds resolution() const noexcept { return std::chrono::nanoseconds(tick_ns_); }

  // origin() returns the start of tick 0.
  Clock::time_point origin() const noexcept {
    return Clock::time_point(Clock::duration(origin_));
  }

  // tick_of() returns the tick containing `t`: floor((t - origin()) / resolution()), 0 for
  // times before the origin, saturated at 2^64 - 2.
  std::uint64_t tick_of(Clock::time_point t) const noexcept {
    const std::int64_t r = t.time_since_epoch().count();
    if (r <= origin_) return 0;
    const std::uint64_t q =
        div_.divide(static_cast<std::uint64_t>(r) - static_cast<std::uint64_t>(origin_));
    return q < kMaxTick ? q : kMaxTick;
  }

  // position() returns the wheel's current tick: every node filed under an earlier tick has
  // been reported. It trails tick_of(now) of the last advance() while nothing is due.
  std::uint64_t position() const noexcept { return cur_; }

 private:
  static_assert(std::is_same_v<Clock::duration::period, std::nano>,
                "the wheel counts Clock::duration ticks as nanoseconds");

  static constexpr unsigned kBits = 6;
  static constexpr unsigned kSlots = 1u << kBits;
  static constexpr unsigned kLevels = (64 + kBits - 1) / kBits;  // 11: the full tick range
  static constexpr unsigned kDeferred = kLevels * kSlots;        // nodes armed by callbacks
  static constexpr unsigned kFiring = kDeferred + 1;             // nodes being reported
  static constexpr unsigned kStaged = kDeferred + 2;             // arm_after() nodes, no deadline yet
  static constexpr std::uint64_t kMaxTick = ~std::uint64_t{0} - 1;  // so target + 1 is safe

  // Restores the wheel after an advance() pass, even if a callback throws.
  class AdvanceScope {
   public:
    AdvanceScope(TimerWheel& wheel, std::uint64_t target) noexcept : wheel_(wheel) {
      assert(wheel.defer_below_ == 0 && "advance() called from inside on_expire");
      wheel.defer_below_ = target + 1;
    }
    ~AdvanceScope() { wheel_.finish_advance(); }
    AdvanceScope(const AdvanceScope&) = delete;
    AdvanceScope& operator=(const AdvanceScope&) = delete;

   private:
    TimerWheel& wheel_;
  };

  // slot_start() returns the first tick of `slot` at `level` in the block that holds `cur`.
  // (Two shifts, because the block shift is 66 at the top level.)
  static std::uint64_t slot_start(std::uint64_t cur, unsigned level, unsigned slot) noexcept {
    const unsigned shift = level * kBits;
    return ((((cur >> shift) >> kBits) << kBits) | slot) << shift;
  }

  static void link_tail(TimerNode& head, TimerNode& node) noexcept {
    TimerNode* const tail = head.prev;
    node.prev = tail;
    node.next = &head;
    tail->next = &node;
    head.prev = &node;
  }

  // file() files a node whose deadline is set, as arm() describes.
  void file(TimerNode& node) noexcept {
    std::uint64_t t = tick_of(node.deadline);
    if (t < cur_) t = cur_;  // already in the past: due at the current position
    node.tick = t;
    if (t < defer_below_) [[unlikely]] {
      // Armed by a callback with a tick the running advance() may still reach: parking it
      // keeps a re-arm with deadline <= now from being reported again and again forever.
      TimerNode& head = buckets_[kDeferred];
      if (head.next == &head || node.deadline < head.deadline) head.deadline = node.deadline;
      link_tail(head, node);
      return;
    }
    place(node, t);
  }

  // place() files `node` under tick `t` (t >= cur_) relative to the current position.
  void place(TimerNode& node, std::uint64_t t) noexcept {
    const std::uint64_t diff = (t ^ cur_) | (kSlots - 1);
    const unsigned level = static_cast<unsigned>(63 - std::countl_zero(diff)) / kBits;
    const unsigned slot = static_cast<unsigned>(t >> (level * kBits)) & (kSlots - 1);
    TimerNode& head = buckets_[level * kSlots + slot];
    const std::uint64_t bit = std::uint64_t{1} << slot;
    if ((occ_[level] & bit) == 0) {
      occ_[level] |= bit;
      levels_ |= 1u << level;
      head.deadline = node.deadline;
    } else if (node.deadline < head.deadline) {
      head.deadline = node.deadline;
    }
    link_tail(head, node);
  }

  // mark_empty() clears the occupancy bits of bucket `b`, whose list has just become empty.
  // The deferred and firing lists map to the spare level kLevels, which nothing reads.
  void mark_empty(unsigned b) noexcept {
    const unsigned level = b / kSlots;
    occ_[level] &= ~(std::uint64_t{1} << (b % kSlots));
    if (occ_[level] == 0) levels_ &= ~(1u << level);
  }

  // idle() returns true, after moving cur_ as far towards `target` as it can go without any
  // work, when no node in the wheel is due at `now`; otherwise it leaves the earliest
  // occupied slot in `level`/`slot` and its first tick in `first`.
  bool idle(Clock::time_point now, std::uint64_t target, unsigned& level, unsigned& slot,
            std::uint64_t& first) noexcept {
    if (levels_ == 0) {
      cur_ = target;
      return true;
    }
    level = static_cast<unsigned>(std::countr_zero(levels_));
    slot = static_cast<unsigned>(std::countr_zero(occ_[level]));
    first = slot_start(cur_, level, slot);
    if (buckets_[level * kSlots + slot].deadline <= now) return false;
    // Nothing is due. cur_ may move up to the slot's first tick (level 0) or just before it
    // (higher levels, so that the slot need not be cascaded yet); both keep every node filed
    // where place() would file it.
    const std::uint64_t stop = level == 0 ? first : first - 1;
    cur_ = stop < target ? stop : target;
    return true;
  }

  // take_all() moves the whole level-0 `slot` list to the firing list.
  void take_all(unsigned slot) noexcept;
  // take_due() moves the nodes of level-0 `slot` whose deadline <= now to the firing list,
  // keeping the others (and their order) and making the slot's deadline bound exact.
  void take_due(unsigned slot, Clock::time_point now) noexcept;
  // cascade() re-files every node of a higher-level slot relative to cur_ (its first tick).
  void cascade(unsigned level, unsigned slot) noexcept;
  // staged() tells whether arm_after() nodes wait for their deadline; fix_staged() gives them
  // `now + delay` and files them (as arm() would, deferred inside an advance() pass).
  bool staged() const noexcept { return buckets_[kStaged].next != &buckets_[kStaged]; }
  void fix_staged(Clock::time_point now) noexcept;
  // finish_advance() ends an advance() pass: re-files nodes left on the firing list (only
  // after a throwing callback) and the nodes armed by callbacks.
  void finish_advance() noexcept;

  // Sentinels of every slot list (level * 64 + slot), then the deferred, firing and staged
  // lists. A sentinel's `deadline` is a lower bound of the deadlines in its list while
  // non-empty (not kept for the staged list).
  TimerNode buckets_[kDeferred + 3];
  std::uint64_t occ_[kLevels + 1] = {};  // per-level slot occupancy; [kLevels] is a sink
  std::uint32_t levels_ = 0;             // bit k: occ_[k] != 0 (k < kLevels)
  std::uint64_t cur_ = 0;                // wheel position (tick)
  std::uint64_t defer_below_ = 0;        // during advance(): target + 1; else 0
  std::size_t size_ = 0;
  std::int64_t origin_ = 0;              // Clock::duration count of tick 0
  std::uint64_t tick_ns_ = 1;
  TickDivider div_{1};
};

template <typename F>
std::size_t TimerWheel::advance(Clock::time_point now, F&& on_expire) {
  if (staged()) [[unlikely]] fix_staged(now);
  std::uint64_t target = tick_of(now);
  if (target < cur_) target = cur_;
  unsigned level = 0;
  unsigned slot = 0;
  std::uint64_t first = 0;
  if (idle(now, target, level, slot, first)) return 0;

  std::size_t reported = 0;
  AdvanceScope scope(*this, target);
  TimerNode& firing = buckets_[kFiring];
  do {
    // The earliest slot may hold a due node, so first <= target (see idle()).
    assert(first <= target);
    cur_ = first;
    if (level != 0) {
      cascade(level, slot);
      continue;
    }
    if (first < target) {
      take_all(slot);  // every node of an earlier tick is due
    } else {
      take_due(slot, now);
    }
    while (firing.next != &firing) {
      TimerNode& node = *firing.next;
      firing.next = node.next;
      node.next->prev = &firing;
      node.next = nullptr;
      node.prev = nullptr;
      --size_;
      ++reported;
      on_expire(node);
    }
  } while (!idle(now, target, level, slot, first));
  return reported;
}

}  // namespace aem::detail
