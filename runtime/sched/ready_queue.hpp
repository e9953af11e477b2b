// ready_queue.hpp — a core's ready capsules, ordered by priority: strict across levels
// (within the anti-starvation budget), FIFO within a level; push and pop are O(1) (a bitmap of
// non-empty levels and an intrusive FIFO per level).
#pragma once

#include <aem/priority.hpp>

#include <bit>
#include <cstddef>
#include <cstdint>

namespace aem::detail {

// ReadyQueue<Node> needs `Node* ready_next` and `Priority priority` members.
//
// Starvation bound: when `budget` > 0, after `budget` consecutive pops that passed over a
// non-empty lower level, the next pop serves a lower level instead; those turns sweep the
// non-empty lower levels from high to low and wrap. So while higher levels are flooded, a node
// with k nodes ahead of it in its own level is popped within (k+1)·(kPriorityLevels−1)·(budget+1)
// pops. budget == 0 means strict priority.
template <typename Node>
class ReadyQueue {
 public:
  explicit ReadyQueue(unsigned budget = 32) noexcept : budget_(budget) {}

  // A level's FIFO ends at its tail, not at a null link: push need not clear the node's
  // ready_next, and an empty level has a null tail (its head is then stale and never read).
  void push(Node* node) noexcept {
    const unsigned level = static_cast<unsigned>(node->priority);
    Fifo& fifo = levels_[level];
    if (fifo.tail != nullptr) fifo.tail->ready_next = node;
    else fifo.head = node;
    fifo.tail = node;
    bitmap_ |= 1u << level;
  }

  Node* pop() noexcept {
    if (bitmap_ == 0) return nullptr;
    const unsigned top = highest(bitmap_);
    unsigned level = top;
    if ((bitmap_ & (bitmap_ - 1)) == 0) {  // one level only: nothing is passed over
      bypassed_ = 0;
    } else if (budget_ != 0 && ++bypassed_ > budget_) {
      const std::uint32_t lower = bitmap_ & ((1u << top) - 1);
      bypassed_ = 0;
      const std::uint32_t at_or_below_cursor = lower & ((2u << cursor_) - 1);
      level = highest(at_or_below_cursor != 0 ? at_or_below_cursor : lower);
      cursor_ = level == 0 ? kPriorityLevels - 1 : level - 1;
    }
    return take_head(level);
  }

  // exchange_only is push(node) followed by pop() for the case where the queue holds exactly
  // one node, of node's level: that node is returned and `node` takes its place. Otherwise it
  // changes nothing and returns nullptr. (Two capsules taking turns: a yield in two stores.)
  Node* exchange_only(Node* node) noexcept {
    const unsigned level = static_cast<unsigned>(node->priority);
    if (bitmap_ != (1u << level)) return nullptr;
    Fifo* fifo = &levels_[level];
    // The address is computed once and kept: otherwise GCC computes it again for the stores
    // below, two more instructions on the path of every yield between two capsules.
    asm("" : "+r"(fifo));
    Node* other = fifo->head;
    if (other != fifo->tail) return nullptr;
    if (other == nullptr) __builtin_unreachable();  // the level's bit is set: it holds a node
    fifo->head = fifo->tail = node;
    bypassed_ = 0;  // as pop() on a single level
    return other;
  }

  // remove takes `node` out of its level (found by node->priority), wherever it is in the FIFO;
  // false if it is not there. O(nodes ahead of it in that level): for rare re-prioritisation,
  // not for the scheduling path.
  bool remove(Node* node) noexcept {
    const unsigned level = static_cast<unsigned>(node->priority);
    Fifo& fifo = levels_[level];
    if (fifo.tail == nullptr) return false;
    Node* prev = nullptr;
    for (Node* at = fifo.head;; at = at->ready_next) {
      if (at == node) {
        if (prev == nullptr) {
          (void)take_head(level);
        } else if (node == fifo.tail) {
          fifo.tail = prev;
        } else {
          prev->ready_next = node->ready_next;
        }
        return true;
      }
      if (at == fifo.tail) return false;
      prev = at;
    }
  }

  // count returns how many nodes wait at `level`. O(n): for metrics snapshots only.
  std::size_t count(unsigned level) const noexcept {
    const Fifo& fifo = levels_[level];
    if (fifo.tail == nullptr) return 0;
    std::size_t n = 1;
    for (const Node* at = fifo.head; at != fifo.tail; at = at->ready_next) ++n;
    return n;
  }

  bool empty() const noexcept { return bitmap_ == 0; }
  // highest_level returns the highest non-empty level; precondition: !empty().
  unsigned highest_level() const noexcept { return highest(bitmap_); }

 private:
  struct Fifo {
    Node* head = nullptr;
    Node* tail = nullptr;
  };
  // take_head unlinks and returns the head of non-empty `level`.
  [[gnu::always_inline]] Node* take_head(unsigned level) noexcept {
    Fifo& fifo = levels_[level];
    Node* node = fifo.head;
    if (node == fifo.tail) {
      fifo.tail = nullptr;
      bitmap_ &= ~(1u << level);
    } else {
      fifo.head = node->ready_next;
    }
    return node;
  }
  static unsigned highest(std::uint32_t bits) noexcept { return 31u - static_cast<unsigned>(std::countl_zero(bits)); }

  Fifo levels_[kPriorityLevels];
  std::uint32_t bitmap_ = 0;
  unsigned budget_;
  unsigned bypassed_ = 0;
  unsigned cursor_ = kPriorityLevels - 1;
};

}  // namespace aem::detail
