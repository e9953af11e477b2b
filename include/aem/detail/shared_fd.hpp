// detail/shared_fd.hpp — a file descriptor that several capsules may block on at once, so that
// another capsule or thread can cancel what they wait for (cancel) or close it under them
// (close) without freeing anything the kernel still uses.
#pragma once

#include <aem/detail/waiter.hpp>
#include <aem/export.hpp>

#include <atomic>
#include <cassert>

namespace aem::detail {

// IoCancelSlot lives on the stack of a capsule blocked in one operation on a SharedFd, linked
// into the SharedFd's list while the operation is in flight. A canceller sets `requested`;
// whoever flips `wake_pending` from false to true owes the capsule exactly one wake-up — that
// is what keeps a cancel that races with the completion from waking the capsule twice.
struct IoCancelSlot {
  IoCancelSlot* next = nullptr;
  IoCancelSlot* prev = nullptr;
  IoCancelSlot* wake_next = nullptr;  // a canceller's chain of capsules to wake after unlocking
  void* capsule = nullptr;            // the blocked capsule (runtime-internal type)
  std::atomic<bool> requested{false};
  std::atomic<bool> wake_pending{false};
};

// SharedFd owns a file descriptor and knows the operations in flight on it. Moving it, or
// destroying it, requires that no operation is in flight (close() first from another capsule),
// detached ones included (hand_over_detached() first).
class AEM_EXPORT SharedFd {
 public:
  SharedFd() noexcept = default;
  explicit SharedFd(int fd) noexcept : fd_(fd) {}
  SharedFd(SharedFd&& other) noexcept : fd_(other.release()) {}
  SharedFd& operator=(SharedFd&& other) noexcept;
  SharedFd(const SharedFd&) = delete;
  SharedFd& operator=(const SharedFd&) = delete;
  ~SharedFd() {
    assert(head_ == nullptr && "aem: a socket destroyed while calls are in flight on it; close() it first");
    (void)close();
  }

  // get returns the descriptor, or -1 once it is closed or released. Any thread.
  int get() const noexcept { return fd_.load(std::memory_order_acquire); }

  // enter links `slot` for the calling capsule and returns the descriptor to operate on, or
  // -1 if it is closed (nothing is linked then). Call from a capsule.
  int enter(IoCancelSlot* slot) noexcept;
  // leave unlinks `slot` once its operation has completed; if a close() waited for the last
  // operation, the descriptor is closed now. Call from the capsule that entered.
  void leave(IoCancelSlot* slot) noexcept;

  // cancel asks every operation in flight to stop; each ends with errc::cancelled unless it
  // had already completed. Operations started later are not affected. Any thread.
  void cancel() noexcept;
  // close cancels the operations in flight and closes the descriptor — at once, or when the
  // last of them has left. Returns the errno of ::close (0 when there was nothing to close or
  // the close is deferred). Any thread.
  int close() noexcept;
  // release gives up ownership and returns the descriptor, or -1 if operations are in flight,
  // detached ones included (it then keeps it), or there is none. Any thread.
  int release() noexcept;

  // enter_detached counts one operation that no capsule waits for (a stream's detached send,
  // net/stream.hpp) and returns the descriptor, or -1 if it is closed (nothing is counted then).
  // While any is counted, close() defers ::close until the last leave_detached, and shuts the
  // socket down so that a send stuck on a peer that does not read ends too. Any thread.
  int enter_detached() noexcept;
  // leave_detached ends what enter_detached counted; closes the descriptor if a close() waits
  // for it. Any thread.
  void leave_detached() noexcept;
  // hand_over_detached gives up the descriptor — open, or closed but waiting for the counted
  // operations — to their owner, who closes it when they are over; the count is dropped and the
  // SharedFd is left closed. Returns -1 if there is nothing to hand over or a capsule's
  // operation is still in flight (nothing changes then). Any thread.
  int hand_over_detached() noexcept;

  // read_drained tells whether the last stream read got less than it asked for: it emptied the
  // socket, so the next read most likely finds nothing yet (a peer that waits for an answer
  // first) and should wait for data before it tries. note_read records it. A hint only, racy by
  // design between capsules reading one socket at once. Any thread.
  bool read_drained() const noexcept { return read_drained_.load(std::memory_order_relaxed); }
  void note_read(bool drained) noexcept { read_drained_.store(drained, std::memory_order_relaxed); }

 private:
  // cancel_locked marks every linked slot and returns the chain of capsules to wake.
  IoCancelSlot* cancel_locked() noexcept;
  static void wake_chain(IoCancelSlot* chain) noexcept;

  mutable SpinLock lock_;
  std::atomic<bool> read_drained_{false};
  std::atomic<int> fd_{-1};
  int closing_fd_ = -1;  // closed by the last operation to leave
  int detached_ = 0;     // enter_detached minus leave_detached
  IoCancelSlot* head_ = nullptr;
};

}  // namespace aem::detail
