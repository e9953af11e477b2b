// channel.hpp — aem::Channel<T>: a bounded multi-producer multi-consumer queue between capsules
// on any cores.
#pragma once

#include <aem/detail/wait_note.hpp>
#include <aem/detail/waiter.hpp>
#include <aem/error.hpp>
#include <aem/export.hpp>
#include <aem/result.hpp>
#include <aem/time.hpp>

#include <atomic>
#include <concepts>
#include <cstddef>
#include <memory>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace aem {

namespace detail {
// await_handoff waits (briefly) until a notifier whose notify() failed sets `released`: the
// hand-off protocol shared by all the synchronisation primitives (detail/waiter.hpp).
AEM_EXPORT void await_handoff(const std::atomic<bool>& released) noexcept;
// inline_refusal is how a waiting call that returns its errors refuses an inline handler:
// errc::inline_handler_blocked (counted in the handler's EventInfo::blocked) when the caller
// is an inline handler on a core's dispatcher, else no error (a capsule may wait; on a plain
// thread the Waiter throws errc::not_in_capsule).
AEM_EXPORT std::error_code inline_refusal() noexcept;
}  // namespace detail

// Channel<T> is a bounded FIFO queue of T shared by any number of sending and receiving
// capsules, on any cores. send() suspends the calling capsule while the channel is full and
// receive() while it is empty (never the thread); try_send(), try_receive() and close() never
// suspend and work from any thread.
//
// Values are delivered in FIFO order per sender. A value sent while a receiver waits is handed
// directly to the first waiting receiver; a sender blocked on a full channel has its value moved
// into the buffer by the receiver that makes room, in FIFO order of the blocked senders. Waiting
// receivers and waiting senders are served first-come first-served. A value is never lost or
// delivered twice: if a waiting call's deadline passes (or the runtime starts shutting down) at
// the very moment a value is handed over to or taken from it, the hand-off wins and the call
// succeeds.
//
// The buffer is one ring of `capacity` slots allocated by the constructor: sending and receiving
// allocate nothing. T must be nothrow move-constructible (move-only types such as
// std::unique_ptr work); it is moved while an internal spin lock is held, so keep moves cheap.
//
// After close(), send() fails with errc::channel_closed; receive() still returns the values in
// the buffer, then fails with errc::channel_closed. Destroying a Channel that capsules wait on
// is undefined behaviour; values still buffered are destroyed with it.
//
// Example:
//   aem::Channel<std::unique_ptr<Request>> requests(64);
//   // producer capsule (any core):
//   if (auto sent = requests.send(std::make_unique<Request>(...), 10ms); !sent) drop();
//   // consumer capsule (any core):
//   while (auto request = requests.receive()) handle(std::move(*request));
//   // ends with errc::channel_closed once close() was called and the buffer is drained
template <typename T>
class Channel {
  static_assert(!std::is_reference_v<T> && !std::is_const_v<T>, "aem::Channel<T>: T must be a non-const object type");
  static_assert(std::is_nothrow_move_constructible_v<T> && std::is_nothrow_destructible_v<T>,
                "aem::Channel<T>: T must be nothrow move-constructible and nothrow destructible");

 public:
  using value_type = T;

  // Channel() creates an open, empty channel that buffers up to `capacity` values.
  // Throws std::invalid_argument if `capacity` is 0 (there are no rendezvous channels), or
  // std::bad_alloc.
  explicit Channel(std::size_t capacity) : capacity_(capacity) {
    if (capacity == 0) throw std::invalid_argument("aem::Channel: capacity must be at least 1");
    buffer_ = std::allocator<T>().allocate(capacity);
  }
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;
  ~Channel() {
    for (; size_ > 0; --size_) {
      std::destroy_at(buffer_ + head_);
      head_ = next(head_);
    }
    std::allocator<T>().deallocate(buffer_, capacity_);
  }

  // send() moves `value` into the channel: to the first waiting receiver, else into the
  // buffer; if the buffer is full it suspends the calling capsule until a receiver makes room,
  // `deadline` passes (errc::timed_out) or the channel is closed (errc::channel_closed).
  // On any error `value` is left untouched, so the caller may retry.
  // Call from a capsule. Throws std::system_error(errc::not_in_capsule) from a plain thread
  // (use try_send() there); returns errc::inline_handler_blocked from an inline handler
  // (Executor::inline_handler), even when there is room. If the runtime shuts down while the
  // capsule waits, the capsule is unwound (see detail::throw_forced_unwind) and the value is
  // not sent.
  Result<void> send(T&& value, Deadline deadline = {}) {
    if (std::error_code refused = detail::inline_refusal()) return refused;
    detail::Waiter waiter;
    SendOp op{&value};
    waiter.slot = &op;
    guard_.lock();
    if (Result<void> now = send_now_locked(value); now || now.error() != errc::would_block) return now;
    senders_.push_back(&waiter);
    guard_.unlock();
    detail::note_wait(detail::WaitKind::channel_send, this);
    const detail::WakeReason reason = waiter.wait(deadline);
    // Popped by a receiver (op.taken) or by close(); see popped_after_wait.
    const bool popped = reason == detail::WakeReason::notified || popped_after_wait(senders_, waiter, op.released);
    if (op.taken) return {};
    if (popped) return errc::channel_closed;
    if (reason == detail::WakeReason::interrupted) detail::throw_forced_unwind();
    return errc::timed_out;
  }

  // send() sends a copy of `value`; otherwise as send(T&&, Deadline).
  Result<void> send(const T& value, Deadline deadline = {})
    requires std::copy_constructible<T>
  {
    T copy(value);
    return send(std::move(copy), deadline);
  }

  // receive() takes the oldest value from the channel; if it is empty it suspends the calling
  // capsule until a value arrives, `deadline` passes (errc::timed_out) or the channel is
  // closed (errc::channel_closed). A closed channel still yields its buffered values first.
  // Call from a capsule. Throws std::system_error(errc::not_in_capsule) from a plain thread
  // (use try_receive() there); returns errc::inline_handler_blocked from an inline handler
  // (Executor::inline_handler), even when a value is waiting. If the runtime shuts down while
  // the capsule waits, the capsule is unwound (see detail::throw_forced_unwind).
  Result<T> receive(Deadline deadline = {}) {
    if (std::error_code refused = detail::inline_refusal()) return refused;
    detail::Waiter waiter;
    ReceiveOp op;
    waiter.slot = &op;
    guard_.lock();
    if (Result<T> now = receive_now_locked(); now || now.error() != errc::would_block) return now;
    receivers_.push_back(&waiter);
    guard_.unlock();
    detail::note_wait(detail::WaitKind::channel_receive, this);
    const detail::WakeReason reason = waiter.wait(deadline);
    // Popped by a sender (op.value) or by close(); see popped_after_wait.
    const bool popped = reason == detail::WakeReason::notified || popped_after_wait(receivers_, waiter, op.released);
    if (op.value) return Result<T>(std::move(*op.value));
    if (popped) return errc::channel_closed;
    if (reason == detail::WakeReason::interrupted) detail::throw_forced_unwind();
    return errc::timed_out;
  }

  // try_send() sends `value` if that needs no waiting: to a waiting receiver or into a free
  // buffer slot. Errors: errc::would_block (full), errc::channel_closed; on error `value` is
  // left untouched. Call from any thread (a capsule on any core, or a plain thread).
  Result<void> try_send(T&& value) noexcept {
    guard_.lock();
    Result<void> now = send_now_locked(value);
    if (!now && now.error() == errc::would_block) guard_.unlock();
    return now;
  }

  // try_send() sends a copy of `value`; otherwise as try_send(T&&).
  Result<void> try_send(const T& value)
    requires std::copy_constructible<T>
  {
    T copy(value);
    return try_send(std::move(copy));
  }

  // try_receive() takes the oldest value if there is one. Errors: errc::would_block (empty and
  // open), errc::channel_closed (empty and closed). Call from any thread.
  Result<T> try_receive() noexcept {
    guard_.lock();
    Result<T> now = receive_now_locked();
    if (!now && now.error() == errc::would_block) guard_.unlock();
    return now;
  }

  // close() closes the channel: later sends fail with errc::channel_closed, and every waiting
  // sender and receiver is woken with errc::channel_closed (receivers only wait on an empty
  // channel). Values already buffered can still be received. Idempotent.
  // Call from any thread (a capsule on any core, or a plain thread).
  void close() noexcept {
    detail::Waiter* receivers = nullptr;
    detail::Waiter* senders = nullptr;
    guard_.lock();
    if (!closed_) {
      closed_ = true;
      receivers = take_all_locked(receivers_);
      senders = take_all_locked(senders_);
    }
    guard_.unlock();
    wake_all<ReceiveOp>(receivers);
    wake_all<SendOp>(senders);
  }

  // closed() reports whether close() has been called. Call from any thread.
  bool closed() const noexcept {
    guard_.lock();
    const bool closed = closed_;
    guard_.unlock();
    return closed;
  }

  // size() returns the number of buffered values (a snapshot). Call from any thread.
  std::size_t size() const noexcept {
    guard_.lock();
    const std::size_t size = size_;
    guard_.unlock();
    return size;
  }

  // capacity() returns the capacity given to the constructor. Call from any thread.
  std::size_t capacity() const noexcept { return capacity_; }

 private:
  // send_now_locked sends without waiting — to a waiting receiver, else into a free slot — with
  // guard_ held. It releases guard_ unless the channel is full (errc::would_block): then the
  // caller either queues itself under the same lock or gives up.
  Result<void> send_now_locked(T& value) noexcept {
    if (closed_) {
      guard_.unlock();
      return errc::channel_closed;
    }
    if (detail::Waiter* receiver = receivers_.pop_front()) {
      handoff_locked(receiver, value);
      guard_.unlock();
      wake<ReceiveOp>(receiver);
      return {};
    }
    if (size_ < capacity_) {
      push_locked(std::move(value));
      guard_.unlock();
      return {};
    }
    return errc::would_block;
  }

  // receive_now_locked takes a buffered value without waiting, with guard_ held. It releases
  // guard_ unless the channel is empty and open (errc::would_block).
  Result<T> receive_now_locked() noexcept {
    if (size_ > 0) {
      detail::Waiter* sender = nullptr;
      T value = pop_locked(sender);
      guard_.unlock();
      if (sender != nullptr) wake<SendOp>(sender);
      return Result<T>(std::move(value));
    }
    if (closed_) {
      guard_.unlock();
      return errc::channel_closed;
    }
    return errc::would_block;
  }
  // SendOp is what a blocked sender offers: the receiver that makes room moves *value into the
  // buffer and sets `taken` under guard_, before it notifies the sender.
  struct SendOp {
    T* value;
    bool taken = false;
    std::atomic<bool> released{false};  // the notifier is done with us (failed notify)
  };
  // ReceiveOp is where a sender hands a value to a blocked receiver, under guard_ and before
  // it notifies the receiver.
  struct ReceiveOp {
    std::optional<T> value;
    std::atomic<bool> released{false};  // the notifier is done with us (failed notify)
  };

  std::size_t next(std::size_t index) const noexcept { return index + 1 == capacity_ ? 0 : index + 1; }

  // The hand-off protocol (detail/waiter.hpp): popping a waiter under guard_ commits a value
  // (or, from close(), the end of its wait) to it; it is notified after guard_ is released. If
  // the notify fails, the waiter's wait ended just then by its deadline or a shutdown; it finds
  // itself unlinked when it takes guard_, keeps what was committed to it, and waits in
  // detail::await_handoff until the notifier no longer touches its Waiter.

  // wake notifies a waiter popped under guard_, after guard_ is released.
  template <typename Op>
  static void wake(detail::Waiter* waiter) noexcept {
    auto* op = static_cast<Op*>(waiter->slot);  // read first: after a successful notify it may be gone
    if (!waiter->notify()) op->released.store(true, std::memory_order_release);
  }

  // wake_all wakes a chain built by take_all_locked.
  template <typename Op>
  static void wake_all(detail::Waiter* chain) noexcept {
    while (chain != nullptr) {
      detail::Waiter* next_waiter = chain->next;  // read before the wake, as above
      wake<Op>(chain);
      chain = next_waiter;
    }
  }

  // take_all_locked empties `list` into a chain through Waiter::next (popped Waiters belong to
  // no list any more).
  static detail::Waiter* take_all_locked(detail::WaitList& list) noexcept {
    detail::Waiter* head = nullptr;
    detail::Waiter* tail = nullptr;
    while (detail::Waiter* waiter = list.pop_front()) {
      if (tail != nullptr) tail->next = waiter;
      else head = waiter;
      tail = waiter;
    }
    return head;
  }

  // popped_after_wait settles a wait that did not end by a notify: unlinks the waiter and
  // returns false if it is still queued; otherwise something was committed to it by a notifier
  // still on its way: wait for it to be done, and return true.
  bool popped_after_wait(detail::WaitList& list, detail::Waiter& waiter, const std::atomic<bool>& released) noexcept {
    guard_.lock();
    const bool queued = waiter.linked;
    list.remove(&waiter);
    guard_.unlock();
    if (queued) return false;
    detail::await_handoff(released);
    return true;
  }

  // handoff_locked moves `value` to a receiver just popped (receivers only wait while the
  // buffer is empty).
  static void handoff_locked(detail::Waiter* receiver, T& value) noexcept {
    static_cast<ReceiveOp*>(receiver->slot)->value.emplace(std::move(value));
  }

  void push_locked(T&& value) noexcept {
    std::size_t tail = head_ + size_;
    if (tail >= capacity_) tail -= capacity_;
    std::construct_at(buffer_ + tail, std::move(value));
    ++size_;
  }

  // pop_locked removes the oldest buffered value and refills the freed slot from the first
  // waiting sender (senders only wait while the buffer is full), which it returns in `wake_me`
  // to be notified after guard_ is released.
  T pop_locked(detail::Waiter*& wake_me) noexcept {
    T value(std::move(buffer_[head_]));
    std::destroy_at(buffer_ + head_);
    head_ = next(head_);
    --size_;
    if (detail::Waiter* sender = senders_.pop_front()) {
      auto* op = static_cast<SendOp*>(sender->slot);
      push_locked(std::move(*op->value));
      op->taken = true;
      wake_me = sender;
    }
    return value;
  }

  mutable detail::SpinLock guard_;  // guards everything below but capacity_
  const std::size_t capacity_;
  T* buffer_ = nullptr;
  std::size_t head_ = 0;  // index of the oldest value
  std::size_t size_ = 0;
  bool closed_ = false;
  detail::WaitList receivers_;  // non-empty only while size_ == 0
  detail::WaitList senders_;    // non-empty only while size_ == capacity_
};

}  // namespace aem
