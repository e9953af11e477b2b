// payload_queue.hpp — the FIFO of a registration's activations that have not started yet
// (the pool had no capsule, or a keepalive capsule is still busy with an earlier one).
#pragma once

#include "alloc/task_memory.hpp"

#include <aem/detail/registration.hpp>

#include <cstddef>
#include <new>
#include <utility>

namespace aem::detail {

class PayloadQueue {
 public:
  PayloadQueue() noexcept = default;
  ~PayloadQueue() {
    while (!empty()) (void)pop();
    if (items_ != nullptr) task_free(items_);
  }
  PayloadQueue(const PayloadQueue&) = delete;
  PayloadQueue& operator=(const PayloadQueue&) = delete;

  bool empty() const noexcept { return head_ == tail_; }
  std::size_t size() const noexcept { return tail_ - head_; }

  // push appends `payload`; false (and `payload` untouched) when memory for a larger queue
  // cannot be had.
  bool push(Payload& payload) noexcept {
    if (size() == capacity_ && !grow()) return false;
    new (&items_[tail_ & (capacity_ - 1)]) Payload(std::move(payload));
    ++tail_;
    return true;
  }

  // for_each calls `f(payload)` on every queued payload, oldest first.
  template <typename F>
  void for_each(F&& f) const {
    for (std::size_t i = head_; i != tail_; ++i) f(static_cast<const Payload&>(items_[i & (capacity_ - 1)]));
  }

  // front is the oldest payload. Precondition: !empty().
  Payload& front() noexcept { return items_[head_ & (capacity_ - 1)]; }

  // pop removes and returns the oldest payload. Precondition: !empty().
  Payload pop() noexcept {
    Payload& slot = items_[head_ & (capacity_ - 1)];
    Payload out(std::move(slot));
    slot.~Payload();
    ++head_;
    return out;
  }

 private:
  bool grow() noexcept {
    const std::size_t capacity = capacity_ == 0 ? 4 : capacity_ * 2;
    Payload* items = nullptr;
    try {
      items = static_cast<Payload*>(task_allocate(capacity * sizeof(Payload), alignof(Payload)));
    } catch (const std::bad_alloc&) {
      return false;
    }
    const std::size_t count = size();
    for (std::size_t i = 0; i < count; ++i) {
      Payload& old = items_[(head_ + i) & (capacity_ - 1)];
      new (&items[i]) Payload(std::move(old));
      old.~Payload();
    }
    if (items_ != nullptr) task_free(items_);
    items_ = items;
    capacity_ = capacity;
    head_ = 0;
    tail_ = count;
    return true;
  }

  Payload* items_ = nullptr;
  std::size_t capacity_ = 0;  // a power of two
  std::size_t head_ = 0;
  std::size_t tail_ = 0;
};

}  // namespace aem::detail
