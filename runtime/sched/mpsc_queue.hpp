// mpsc_queue.hpp — the intrusive multi-producer, single-consumer queue behind each core's
// mailbox (Vyukov's algorithm): push is one atomic exchange from any thread, pop runs on the
// owning core only. Nothing is allocated: nodes are embedded in what they carry.
#pragma once

#include <aem/detail/mail_node.hpp>

#include <atomic>

namespace aem::detail {

class MpscQueue {
 public:
  MpscQueue() noexcept : head_(&stub_), tail_(&stub_) {}
  MpscQueue(const MpscQueue&) = delete;
  MpscQueue& operator=(const MpscQueue&) = delete;

  // push appends `node`. Call from any thread. Precondition: `node` is in no queue.
  void push(MailNode* node) noexcept {
    node->next.store(nullptr, std::memory_order_relaxed);
    MailNode* previous = head_.exchange(node, std::memory_order_acq_rel);
    previous->next.store(node, std::memory_order_release);
  }

  // pop removes the oldest node, or returns nullptr when the queue is empty or its only
  // producer is midway through push (empty() then says false: poll again soon).
  // Call from the consumer only.
  MailNode* pop() noexcept {
    MailNode* tail = tail_;
    MailNode* next = tail->next.load(std::memory_order_acquire);
    if (tail == &stub_) {
      if (next == nullptr) return nullptr;
      tail_ = next;
      tail = next;
      next = next->next.load(std::memory_order_acquire);
    }
    if (next != nullptr) {
      tail_ = next;
      return tail;
    }
    if (tail != head_.load(std::memory_order_acquire)) return nullptr;  // a push is in progress
    push(&stub_);
    next = tail->next.load(std::memory_order_acquire);
    if (next != nullptr) {
      tail_ = next;
      return tail;
    }
    return nullptr;
  }

  // empty reports whether no node is queued or being queued. Call from the consumer; with a
  // seq_cst fence before it, it pairs with a producer's push + fence (the sleep handshake).
  bool empty() const noexcept { return head_.load(std::memory_order_acquire) == &stub_ && tail_ == &stub_; }

 private:
  alignas(64) std::atomic<MailNode*> head_;  // producers
  alignas(64) MailNode* tail_;               // consumer
  MailNode stub_;
};

}  // namespace aem::detail
