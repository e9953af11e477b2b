// send_queue.hpp — the ordered queue behind StreamSocket::send(EventData): detached sends that
// no capsule waits for. A queue belongs to the core that created it (the stream's first send);
// all its state is touched only there — by send() and flush() in that core's capsules and by
// its completion in that core's scheduler — so it takes no lock.
//
// While the queue holds bytes, one operation is in flight (a send, or a gathered sendmsg of up
// to kMaxGather queued blocks) and the queue is counted on the stream's SharedFd
// (enter_detached), so close() defers ::close until it ends and shuts the socket down to end it
// soon. When the stream is destroyed with bytes still queued, the queue takes the descriptor
// over (orphan) and closes it, and frees itself, once they are sent or have failed.
//
// Backpressure: past Config::send_queue_bound queued bytes the queue holds the input of its
// descriptor on its core (EventLayer::hold_input: the fd's receives pause, the peer's bytes wait
// in the kernel) and a capsule that sends waits for room (wait_room); both end when the queue
// has drained to half the bound, or failed.
#pragma once

#include "io/backend.hpp"

#include <aem/detail/shared_fd.hpp>
#include <aem/detail/waiter.hpp>
#include <aem/event_data.hpp>
#include <aem/result.hpp>
#include <aem/time.hpp>

#include <cstddef>
#include <memory>
#include <sys/uio.h>
#include <system_error>

namespace aem::detail {

class Core;

class SendQueue {
 public:
  // create makes a queue bound to the calling core. Errors: errc::not_in_capsule on a thread
  // that is not a core, errc::out_of_memory.
  static Result<SendQueue*> create() noexcept;

  SendQueue(const SendQueue&) = delete;
  SendQueue& operator=(const SendQueue&) = delete;

  // push queues `data` to be sent on `socket` after everything queued before it, and starts the
  // send when none is in flight. Returns at once. Errors: the sticky error of an earlier send
  // (then `data` is dropped), errc::invalid_argument (an empty EventData, or a core other than
  // the queue's), errc::not_in_capsule, errc::shutting_down, std::errc::bad_file_descriptor
  // (closed), errc::out_of_memory. Call on the queue's core.
  Result<void> push(SharedFd& socket, EventData data) noexcept;

  // wait_room suspends the calling capsule while the queue holds more than its bound, until
  // it has drained to half of it, failed or gone idle. Called before a push: one block is
  // always taken at once, so a single large send never waits, and a capsule that keeps sending
  // holds at most the bound plus its last block. Returns at once outside a capsule (an
  // inline handler: the held input is its backpressure). Throws ForcedUnwind at a shutdown.
  // Call on the queue's core.
  void wait_room();

  // flush suspends the calling capsule until the queue is empty; returns the sticky error if a
  // send failed. Errors besides: errc::timed_out, errc::not_in_capsule, errc::invalid_argument
  // (another core). Call from a capsule on the queue's core.
  Result<void> flush(Deadline deadline);

  // release is the stream's destructor's part: frees an idle queue, or makes a busy one the
  // owner of the descriptor (taken from `socket`), which it closes once its sends end.
  // Call on the queue's core.
  void release(SharedFd& socket) noexcept;

  // on_home_core reports whether the calling thread is the queue's core.
  bool on_home_core() const noexcept;

 private:
  // kMaxGather bounds one gathered sendmsg: enough to batch a burst of small replies.
  static constexpr std::size_t kMaxGather = 16;

  // Op is the completion record of the operation in flight (standard layout: the backend hands
  // back &completion, which is the record's address).
  struct Op {
    Completion completion;
    SendQueue* queue = nullptr;
  };

  explicit SendQueue(Core* core) noexcept;
  ~SendQueue();

  static void on_complete(Completion* completion, int result, std::uint32_t flags) noexcept;
  void start() noexcept;
  void completed(int result) noexcept;
  void fail(std::error_code error) noexcept;
  void go_idle() noexcept;
  // over_bound: more queued than the bound allows; drained: down to half of it (or no bound).
  bool over_bound() const noexcept { return bound_ != 0 && queued_bytes_ > bound_; }
  bool drained() const noexcept { return bound_ == 0 || queued_bytes_ <= bound_ / 2; }
  // hold_input / release_input hold and release the input of fd_ (once each).
  void hold_input() noexcept;
  void release_input() noexcept;
  void wake_writers() noexcept;
  bool append(EventData&& data) noexcept;
  EventData& at(std::size_t i) noexcept { return items_[(head_ + i) & (capacity_ - 1)]; }

  Core* core_;
  Op op_;
  SharedFd* socket_ = nullptr;  // the stream's, while it lives
  int fd_ = -1;                 // the descriptor operated on while busy_
  bool busy_ = false;           // an operation is in flight (counted on the SharedFd)
  bool orphan_ = false;         // the stream is gone: fd_ is ours to close
  std::error_code error_;       // sticky: the first failure
  // The queued blocks: a ring of capacity_ (a power of two) EventData, count_ from head_; the
  // front block's first offset_ bytes are already sent.
  std::unique_ptr<EventData[]> items_;
  std::size_t capacity_ = 0;
  std::size_t head_ = 0;
  std::size_t count_ = 0;
  std::size_t offset_ = 0;
  iovec iov_[kMaxGather] = {};
  msghdr message_ = {};
  WaitList flushers_;
  WaitList writers_;             // capsules in wait_room
  std::size_t bound_ = 0;        // Config::send_queue_bound
  std::size_t queued_bytes_ = 0; // not yet sent
  int held_fd_ = -1;             // the descriptor whose input is held, or -1
};

}  // namespace aem::detail
