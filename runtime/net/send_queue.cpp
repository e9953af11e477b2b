#include "runtime/net/send_queue.hpp"

#include "runtime/sched/core.hpp"
#include "runtime/sched/runtime_impl.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <new>
#include <utility>

namespace aem::detail {
namespace {

// Linux caps one transfer at 0x7ffff000 bytes anyway; longer blocks take several sends.
constexpr std::size_t kMaxTransfer = 0x7ffff000;
constexpr std::size_t kInitialCapacity = 4;

// connection_gone tells whether a send's error means the peer or the network ended the
// connection (not a half-close of ours, after which reading goes on: EPIPE).
bool connection_gone(int error) noexcept {
  return error == ECONNRESET || error == ECONNABORTED || error == ETIMEDOUT || error == EHOSTUNREACH ||
         error == ENETUNREACH || error == ENETRESET;
}

}  // namespace

SendQueue::SendQueue(Core* core) noexcept : core_(core), bound_(core->runtime().config().send_queue_bound) {
  op_.completion.complete = &on_complete;
  op_.queue = this;
}

SendQueue::~SendQueue() = default;

Result<SendQueue*> SendQueue::create() noexcept {
  Core* core = Core::current_core();
  if (core == nullptr) return errc::not_in_capsule;
  auto* queue = new (std::nothrow) SendQueue(core);
  if (queue == nullptr) return errc::out_of_memory;
  return queue;
}

bool SendQueue::on_home_core() const noexcept { return Core::current_core() == core_; }

bool SendQueue::append(EventData&& data) noexcept {
  if (count_ == capacity_) {
    // Grows by doubling, so a stream that keeps a steady backlog stops allocating; the blocks
    // themselves do not move, so the iovecs of the operation in flight stay valid.
    const std::size_t capacity = capacity_ == 0 ? kInitialCapacity : capacity_ * 2;
    std::unique_ptr<EventData[]> items(new (std::nothrow) EventData[capacity]);
    if (!items) return false;
    for (std::size_t i = 0; i < count_; ++i) items[i] = std::move(at(i));
    items_ = std::move(items);
    capacity_ = capacity;
    head_ = 0;
  }
  items_[(head_ + count_) & (capacity_ - 1)] = std::move(data);
  ++count_;
  return true;
}

Result<void> SendQueue::push(SharedFd& socket, EventData data) noexcept {
  if (Core::current_core() == nullptr) return errc::not_in_capsule;
  if (!on_home_core() || !data) return errc::invalid_argument;
  if (error_) return error_;
  if (data.size() == 0) return {};
  if (core_->runtime().stopping()) return errc::shutting_down;
  if (!busy_) {
    const int fd = socket.enter_detached();
    if (fd < 0) return errno_code(EBADF);
    socket_ = &socket;
    fd_ = fd;
  }
  const std::size_t size = data.size();
  if (!append(std::move(data))) {
    if (!busy_) socket.leave_detached();
    return errc::out_of_memory;
  }
  queued_bytes_ += size;
  // Asked on every push past the bound, not once: a receive registered after the first hold
  // is held as well.
  if (over_bound()) hold_input();
  if (!busy_) {
    busy_ = true;
    start();
  }
  return {};
}

void SendQueue::start() noexcept {
  IoRequest request;
  request.fd = fd_;
  request.flags = MSG_NOSIGNAL;  // a reset peer reports EPIPE instead of killing the process
  if (count_ == 1) {
    EventData& front = at(0);
    const std::size_t left = front.size() - offset_;
    request.opcode = IoOpcode::send;
    request.buffer = front.data() + offset_;
    request.length = left < kMaxTransfer ? left : kMaxTransfer;
  } else {
    // Several blocks queued up while the previous operation was in flight: one gathered
    // sendmsg takes them all (up to kMaxGather), one operation instead of one per block.
    const std::size_t n = count_ < kMaxGather ? count_ : kMaxGather;
    for (std::size_t i = 0; i < n; ++i) {
      EventData& item = at(i);
      const std::size_t skip = i == 0 ? offset_ : 0;
      iov_[i].iov_base = item.data() + skip;
      iov_[i].iov_len = item.size() - skip;
    }
    message_ = {};
    message_.msg_iov = iov_;
    message_.msg_iovlen = n;
    request.opcode = IoOpcode::sendmsg;
    request.message = &message_;
  }
  core_->backend().submit(request, &op_.completion, nullptr);
}

void SendQueue::on_complete(Completion* completion, int result, std::uint32_t flags) noexcept {
  if ((flags & kCompletionMore) != 0) return;  // sends are single-shot
  reinterpret_cast<Op*>(completion)->queue->completed(result);
}

void SendQueue::completed(int result) noexcept {
  if (result < 0) return fail(result == -ECANCELED ? make_error_code(errc::cancelled) : errno_code(-result));
  // Drop what went out: whole blocks, then a prefix of the next one.
  auto sent = static_cast<std::size_t>(result);
  queued_bytes_ -= std::min(sent, queued_bytes_);
  if (drained()) {
    release_input();
    wake_writers();
  }
  while (count_ > 0) {
    const std::size_t left = at(0).size() - offset_;
    if (sent < left) {
      offset_ += sent;
      break;
    }
    sent -= left;
    at(0).reset();
    head_ = (head_ + 1) & (capacity_ - 1);
    --count_;
    offset_ = 0;
  }
  if (count_ == 0) return go_idle();
  // No new operation once the runtime stops: the core has cancelled every operation once and
  // waits for the last to end.
  if (core_->runtime().stopping()) return fail(make_error_code(errc::shutting_down));
  start();
}

void SendQueue::fail(std::error_code error) noexcept {
  if (!error_) error_ = error;
  // A reset connection is over for reading too, and the receive may not learn it: this send
  // has taken the socket's error, so a receive started after it can wait for ever.
  if (fd_ >= 0 && &error.category() == &std::generic_category() && connection_gone(error.value())) {
    if (EventLayer* events = core_->events()) events->end_input(fd_);
  }
  while (count_ > 0) {
    at(0).reset();
    head_ = (head_ + 1) & (capacity_ - 1);
    --count_;
  }
  offset_ = 0;
  queued_bytes_ = 0;
  go_idle();
}

void SendQueue::go_idle() noexcept {
  // The input goes on before anything else: after a failure (a reset peer) the receive must
  // run again to see the reset and end the connection's registrations.
  release_input();
  wake_writers();
  busy_ = false;
  if (orphan_) {
    ::close(fd_);
    delete this;
    return;
  }
  socket_->leave_detached();
  fd_ = -1;
  // Flushers are on this core and resume only after this returns, so none unlinks meanwhile.
  while (Waiter* waiter = flushers_.pop_front()) (void)waiter->notify();
}

void SendQueue::hold_input() noexcept {
  if (held_fd_ >= 0 || fd_ < 0) return;
  held_fd_ = fd_;
  if (EventLayer* events = core_->events()) events->hold_input(held_fd_);
}

void SendQueue::release_input() noexcept {
  if (held_fd_ < 0) return;
  if (EventLayer* events = core_->events()) events->release_input(held_fd_);
  held_fd_ = -1;
}

void SendQueue::wake_writers() noexcept {
  // Writers are on this core and resume only after this returns, so none unlinks meanwhile.
  while (Waiter* waiter = writers_.pop_front()) (void)waiter->notify();
}

void SendQueue::wait_room() {
  Core* core = Core::current_core();
  if (core != core_ || core->current() == nullptr) return;
  while (busy_ && over_bound() && !error_) {
    Waiter waiter;
    writers_.push_back(&waiter);
    const WakeReason reason = waiter.wait(Deadline::never());
    writers_.remove(&waiter);
    if (reason == WakeReason::interrupted) throw_forced_unwind();
  }
}

Result<void> SendQueue::flush(Deadline deadline) {
  Core* core = Core::current_core();
  if (core == nullptr || core->current() == nullptr) return Core::suspension_refused();  // inline handler: counted
  if (core != core_) return errc::invalid_argument;
  while (busy_) {
    Waiter waiter;
    flushers_.push_back(&waiter);
    const WakeReason reason = waiter.wait(deadline);
    flushers_.remove(&waiter);
    if (reason == WakeReason::interrupted) throw_forced_unwind();
    if (reason == WakeReason::timed_out) return errc::timed_out;
  }
  if (error_) return error_;
  return {};
}

void SendQueue::release(SharedFd& socket) noexcept {
  if (!busy_) {
    delete this;
    return;
  }
  // Bytes are still queued: they go out (or fail) after the stream is gone, like the bytes of a
  // closed socket's kernel buffer; the descriptor stays open until then.
  const int fd = socket.hand_over_detached();
  if (fd >= 0) fd_ = fd;
  orphan_ = true;
  socket_ = nullptr;
}

}  // namespace aem::detail
