#include "io/epoll/epoll_backend.hpp"

#include "base/probes.hpp"
#include "io/buffer_ring.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <ctime>
#include <new>
#include <sys/eventfd.h>
#include <unistd.h>

namespace aem::detail {
namespace {

// epoll data of the wake-up eventfd; fds use their own number.
constexpr std::uint64_t kWakeKey = ~std::uint64_t{0};
constexpr std::int64_t kNever = INT64_MAX;
constexpr std::size_t kChunk = 64;

std::int64_t now_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

timespec to_timespec(std::int64_t ns) noexcept {
  if (ns < 0) ns = 0;
  return timespec{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
}

// wait_events is epoll_pwait2 (nanosecond timeouts, Linux 5.11); older kernels get epoll_wait
// with the timeout rounded up to whole milliseconds, so a wait never ends before its deadline.
int wait_events(int epoll_fd, epoll_event* events, int capacity, const timespec* timeout) noexcept {
  static std::atomic<bool> have_pwait2{true};  // the kernel answers alike on every core
  if (have_pwait2.load(std::memory_order_relaxed)) {
    const int n = ::epoll_pwait2(epoll_fd, events, capacity, timeout, nullptr);
    if (n >= 0 || errno != ENOSYS) return n;
    have_pwait2.store(false, std::memory_order_relaxed);
  }
  int ms = -1;
  if (timeout != nullptr) {
    const std::int64_t total = (static_cast<std::int64_t>(timeout->tv_sec) * 1'000'000'000 + timeout->tv_nsec + 999'999) / 1'000'000;
    ms = static_cast<int>(std::min<std::int64_t>(total, INT_MAX));
  }
  return ::epoll_wait(epoll_fd, events, capacity, ms);
}

}  // namespace

Result<std::unique_ptr<EpollBackend>> EpollBackend::create() noexcept {
  std::unique_ptr<EpollBackend> backend(new (std::nothrow) EpollBackend());
  if (!backend) return make_error_code(errc::out_of_memory);
  backend->epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (backend->epoll_fd_ < 0) return errno_code(errno);
  backend->interest_ = InterestTable(backend->epoll_fd_);
  backend->eventfd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (backend->eventfd_ < 0) return errno_code(errno);
  // Level-triggered: a wake-up stays visible until a wait drains it.
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = kWakeKey;
  if (::epoll_ctl(backend->epoll_fd_, EPOLL_CTL_ADD, backend->eventfd_, &event) != 0) return errno_code(errno);
  try {
    backend->ready_.reserve(kChunk);
    backend->delivering_.reserve(kChunk);
  } catch (...) {
    return make_error_code(errc::out_of_memory);
  }
  return backend;
}

EpollBackend::~EpollBackend() {
  if (eventfd_ >= 0) ::close(eventfd_);
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
}

// ---- operation records -----------------------------------------------------------------

EpollOp* EpollBackend::allocate() noexcept {
  if (free_ == nullptr) {
    std::unique_ptr<EpollOp[]> chunk(new (std::nothrow) EpollOp[kChunk]);
    if (!chunk) return nullptr;
    try {
      chunks_.push_back(std::move(chunk));
    } catch (...) {
      return nullptr;
    }
    for (std::size_t i = 0; i < kChunk; ++i) release(&chunks_.back()[i]);
  }
  EpollOp* op = free_;
  free_ = op->live_next;
  *op = EpollOp{};
  return op;
}

void EpollBackend::release(EpollOp* op) noexcept {
  op->live_next = free_;
  free_ = op;
}

// ---- provided buffers ------------------------------------------------------------------

int EpollBackend::register_buffer_ring(BufferRing& ring) noexcept {
  if (find_ring(ring.group()) != nullptr) return -EEXIST;
  try {
    rings_.push_back(&ring);
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  }
  return 0;
}

void EpollBackend::unregister_buffer_ring(BufferRing& ring) noexcept { std::erase(rings_, &ring); }

BufferRing* EpollBackend::find_ring(std::uint16_t group) const noexcept {
  for (BufferRing* ring : rings_) {
    if (ring->group() == group) return ring;
  }
  return nullptr;
}

// ---- submission ------------------------------------------------------------------------

void EpollBackend::submit(const IoRequest& request, Completion* completion, const __kernel_timespec* deadline) noexcept {
  AEM_PROBE_IO_SUBMIT(request.opcode, request.fd, completion);
  ++in_flight_;
  EpollOp* op = allocate();
  if (op == nullptr) {
    emit(completion, -ENOMEM, 0);
    return;
  }
  op->completion = completion;
  op->request = request;
  op->ring = request.opcode == IoOpcode::recv_multishot ? find_ring(request.buffer_group) : nullptr;
  if (deadline != nullptr) op->deadline_ns = deadline->tv_sec * 1'000'000'000 + deadline->tv_nsec;
  if (const int rc = prepare_op(*op); rc < 0) {
    emit(completion, rc, 0);
    release(op);
    return;
  }
  start(op, deadline != nullptr);
}

void EpollBackend::start(EpollOp* op, bool has_deadline) noexcept {
  // A new multishot poll reports the present readiness through its registration (see park).
  if (op->request.opcode != IoOpcode::poll_multishot) {
    for (;;) {
      const int rc = attempt(*op);
      if (rc == kPending) break;
      if (std::uint32_t flags = 0; completes_more(*op, rc, flags)) {
        emit(op->completion, rc, flags);
        continue;
      }
      emit(op->completion, rc, 0);
      release(op);
      return;
    }
  }
  park(op, has_deadline);
}

// park queues `op` on its fd until epoll reports the fd ready, and arms its deadline.
void EpollBackend::park(EpollOp* op, bool has_deadline) noexcept {
  const int rc = interest_.add(op, op->request.opcode == IoOpcode::poll_multishot);
  if (rc != 0) {
    // An fd that got as far as EAGAIN but cannot be polled is waited for the old way.
    const bool blocking_ok = rc == -EPERM && is_transfer(op->request.opcode);
    emit(op->completion, blocking_ok ? attempt_blocking(*op) : rc, 0);
    release(op);
    return;
  }
  op->live_prev = nullptr;
  op->live_next = live_;
  if (live_ != nullptr) live_->live_prev = op;
  live_ = op;
  if (has_deadline && !deadlines_.push(op)) {
    const int fd = op->fd;
    finish(op, -ENOMEM);
    interest_.sync(fd);
  }
}

// finish ends a parked operation with its final completion. The caller syncs the fd's
// registration afterwards (once for all the waiters it finished).
void EpollBackend::finish(EpollOp* op, int result) noexcept {
  interest_.remove(op);
  deadlines_.erase(op);
  if (op->live_prev != nullptr) op->live_prev->live_next = op->live_next;
  else live_ = op->live_next;
  if (op->live_next != nullptr) op->live_next->live_prev = op->live_prev;
  emit(op->completion, result, 0);
  release(op);
}

void EpollBackend::emit(Completion* completion, int result, std::uint32_t flags) noexcept {
  // Reserved ahead, and the queue only grows while a burst of completions outruns delivery.
  ready_.push_back(Delivery{completion, result, flags});
}

// ---- cancellation ----------------------------------------------------------------------

void EpollBackend::cancel(Completion* completion) noexcept {
  // A linear search: cancellation is rare, and deadlines (the common way operations end
  // early) are found through the heap. Not found: finished already, its completion queued.
  for (EpollOp* op = live_; op != nullptr; op = op->live_next) {
    if (op->completion != completion) continue;
    const int fd = op->fd;
    finish(op, cancelled_result(*op));
    interest_.sync(fd);
    return;
  }
}

void EpollBackend::cancel_all() noexcept {
  while (live_ != nullptr) {
    const int fd = live_->fd;
    finish(live_, cancelled_result(*live_));
    interest_.sync(fd);
  }
}

void EpollBackend::expire() noexcept {
  if (deadlines_.empty()) return;
  const std::int64_t now = now_ns();
  while (!deadlines_.empty() && deadlines_.top()->deadline_ns <= now) {
    EpollOp* op = deadlines_.top();
    const int fd = op->fd;
    finish(op, cancelled_result(*op));
    interest_.sync(fd);
  }
}

// ---- readiness -------------------------------------------------------------------------

void EpollBackend::on_ready(int fd, std::uint32_t events) noexcept {
  FdInterest* entry = interest_.find(fd);
  if (entry == nullptr) return;  // its last waiter left after epoll queued the event
  // Errors and hang-ups wake every waiter: its call then reports them (EOF, EPIPE, the error).
  constexpr std::uint32_t kFailure = EPOLLERR | EPOLLHUP;
  if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLPRI | kFailure)) != 0) {
    service(entry->lists[static_cast<int>(WaitKind::reader)]);
  }
  if ((events & (EPOLLOUT | kFailure)) != 0) service(entry->lists[static_cast<int>(WaitKind::writer)]);
  service_pollers(entry->lists[static_cast<int>(WaitKind::poller)], events);
  interest_.sync(fd);
}

// service retries the waiters of one direction in FIFO order until one finds nothing to do:
// the registration is edge-triggered, so the fd must be left drained or without waiters.
void EpollBackend::service(FdWaitList& list) noexcept {
  while (FdWaiter* waiter = list.front()) {
    auto* op = static_cast<EpollOp*>(waiter);
    const int rc = attempt(*op);
    if (rc == kPending) return;
    if (std::uint32_t flags = 0; completes_more(*op, rc, flags)) {
      emit(op->completion, rc, flags);
      continue;
    }
    finish(op, rc);
  }
}

void EpollBackend::service_pollers(FdWaitList& list, std::uint32_t events) noexcept {
  FdWaiter* next = nullptr;
  for (FdWaiter* waiter = list.front(); waiter != nullptr; waiter = next) {
    next = waiter->next;
    auto* op = static_cast<EpollOp*>(waiter);
    const std::uint32_t revents = events & (op->poll_mask | EPOLLERR | EPOLLHUP);
    if (revents == 0) continue;
    if (op->request.opcode == IoOpcode::poll_multishot) emit(op->completion, static_cast<int>(revents), kCompletionMore);
    else finish(op, static_cast<int>(revents));
  }
}

// ---- the loop's side -------------------------------------------------------------------

std::size_t EpollBackend::reap(const timespec* timeout, bool* events) noexcept {
  const int n = wait_events(epoll_fd_, events_, static_cast<int>(std::size(events_)), timeout);
  if (events != nullptr) *events = n > 0;
  for (int i = 0; i < n; ++i) {
    const epoll_event& event = events_[i];
    if (event.data.u64 == kWakeKey) {
      std::uint64_t value;
      [[maybe_unused]] const ssize_t drained = ::read(eventfd_, &value, sizeof value);
      continue;
    }
    on_ready(static_cast<int>(event.data.u64), event.events);
  }
  expire();
  return deliver();
}

std::size_t EpollBackend::deliver() noexcept {
  if (ready_.empty()) return 0;
  // A completion handler may submit: its completion goes to the next delivery, not this one.
  delivering_.swap(ready_);
  for (const Delivery& d : delivering_) {
    if ((d.flags & kCompletionMore) == 0) --in_flight_;
    AEM_PROBE_IO_COMPLETE(d.completion, d.result, d.flags);
    d.completion->complete(d.completion, d.result, d.flags);
  }
  const std::size_t delivered = delivering_.size();
  delivering_.clear();
  return delivered;
}

std::size_t EpollBackend::poll() noexcept {
  if (interest_.registered_fds() == 0) return deliver();  // nothing epoll could report
  const timespec zero{};
  return reap(&zero);
}

std::size_t EpollBackend::wait(TimePoint deadline, unsigned min_completions) noexcept {
  std::int64_t until = kNever;
  if (deadline != TimePoint::max()) {
    until = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch()).count();
  }
  if (min_completions > 1 && until != kNever && ready_.empty()) {
    // epoll reports readiness one wake-up at a time and cannot count it while we sleep: a
    // coalesced wait sleeps to its deadline (or an operation's own, if sooner), then looks.
    std::int64_t limit = until;
    if (!deadlines_.empty()) limit = std::min(limit, deadlines_.top()->deadline_ns);
    const timespec at = to_timespec(limit);
    while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, nullptr) == EINTR) {
    }
    return poll();
  }
  for (;;) {
    std::int64_t limit = until;
    if (!deadlines_.empty()) limit = std::min(limit, deadlines_.top()->deadline_ns);
    if (!ready_.empty()) limit = 0;  // completions are waiting already: just look
    bool events = false;
    std::size_t delivered = 0;
    if (limit == kNever) {
      delivered = reap(nullptr, &events);
    } else {
      const timespec timeout = to_timespec(limit == 0 ? 0 : limit - now_ns());
      delivered = reap(&timeout, &events);
    }
    // epoll_pwait2 can come back early with nothing to report (EINTR; a readiness gone by the
    // time it was collected): the wait goes on until something happened or the time is up.
    if (delivered > 0 || events || limit == 0 || (limit != kNever && now_ns() >= limit)) return delivered;
  }
}

void EpollBackend::wake(Backend*) noexcept {
  const std::uint64_t one = 1;
  [[maybe_unused]] const ssize_t written = ::write(eventfd_, &one, sizeof one);
}

}  // namespace aem::detail
