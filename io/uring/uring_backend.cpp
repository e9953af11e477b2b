#include "io/uring/uring_backend.hpp"

#include "base/probes.hpp"
#include "io/buffer_ring.hpp"

#include <aem/detail/fault_injection.hpp>

#include <cassert>
#include <cerrno>
#include <ctime>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace aem::detail {
namespace {

// user_data values that are not Completion pointers (those are 8-byte aligned).
constexpr std::uint64_t kIgnoreTag = 1;   // nothing to deliver
constexpr std::uint64_t kWakeTag = 3;     // a MSG_RING wake-up from another core
constexpr std::uint64_t kEventfdTag = 5;  // the eventfd read that wakes us from plain threads
// A failed MSG_RING comes back to the sender as (target backend | kWakeFailedTag): the sender
// then wakes the target through its eventfd instead, so no wake-up is lost.
constexpr std::uint64_t kWakeFailedTag = 2;

bool is_tag(std::uint64_t user_data) noexcept { return (user_data & 7u) != 0 || user_data == 0; }

__kernel_timespec to_timespec(std::chrono::nanoseconds d) noexcept {
  if (d < std::chrono::nanoseconds::zero()) d = std::chrono::nanoseconds::zero();
  __kernel_timespec ts{};
  ts.tv_sec = static_cast<long long>(d.count() / 1'000'000'000);
  ts.tv_nsec = static_cast<long long>(d.count() % 1'000'000'000);
  return ts;
}

// consume_cq hands every CQE now in `ring`'s CQ to `each`, then releases them to the kernel.
// Returns how many there were. (CQEs that `each` causes to be posted wait for the next call.)
template <typename F>
unsigned consume_cq(io_uring& ring, F&& each) noexcept {
  unsigned head;
  io_uring_cqe* cqe;
  unsigned seen = 0;
  io_uring_for_each_cqe(&ring, head, cqe) {
    ++seen;
    each(*cqe);
  }
  io_uring_cq_advance(&ring, seen);
  return seen;
}

}  // namespace

Result<std::unique_ptr<UringBackend>> UringBackend::create(RingSizes sizes) noexcept {
  std::unique_ptr<UringBackend> backend(new (std::nothrow) UringBackend());
  if (!backend) return make_error_code(errc::out_of_memory);

  // Ask for the most, take what the kernel grants. SINGLE_ISSUER holds because only this core's
  // thread ever submits to this ring (other cores reach it through MSG_RING or the eventfd).
  struct Attempt {
    unsigned flags;
    BackendFeatures features;
  };
  const Attempt attempts[] = {
      {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN, {true, true, true}},
      {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, {true, true, false}},
      {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN, {true, false, true}},
      {IORING_SETUP_COOP_TASKRUN, {false, false, true}},
      {0, {false, false, false}},
  };
  // TASKRUN_FLAG (5.19) has the kernel say in the SQ ring when task work waits, so poll() and
  // has_work() need no system call to find out there is nothing to do. Only with DEFER_TASKRUN:
  // without it task work is queued per thread, and the flag goes up on whichever of the
  // thread's rings queued first, so it would not be exact for this one.
  auto init = [&](const Attempt& attempt, bool taskrun_flag) {
    io_uring_params params{};
    params.flags = attempt.flags | (taskrun_flag ? IORING_SETUP_TASKRUN_FLAG : 0u);
    if (sizes.cq != 0) {
      params.flags |= IORING_SETUP_CQSIZE;
      params.cq_entries = sizes.cq;
    }
    const int result = io_uring_queue_init_params(sizes.sq, &backend->ring_, &params);
    if (result == 0) {
      backend->features_ = attempt.features;
      backend->features_.taskrun_flag = taskrun_flag;
      backend->features_.ext_arg = (params.features & IORING_FEAT_EXT_ARG) != 0;
      backend->features_.cq_nodrop = (params.features & IORING_FEAT_NODROP) != 0;
      // IORING_RECVSEND_POLL_FIRST came in 5.19, before SINGLE_ISSUER (6.0); an older kernel
      // refuses a recv whose ioprio is not 0.
      backend->features_.poll_first = attempt.features.single_issuer;
    }
    return result;
  };
  int rc = -ENOSYS;
  for (const Attempt& attempt : attempts) {
    const bool can_flag = (attempt.flags & IORING_SETUP_DEFER_TASKRUN) != 0;
    rc = can_flag ? init(attempt, true) : -EINVAL;
    if (rc == -EINVAL) rc = init(attempt, false);
    if (rc != -EINVAL) break;  // done, or ENOSYS / EPERM / ENOMEM: no flag set will help
  }
  if (rc != 0) return errno_code(rc);
  backend->ring_ready_ = true;
  // Entering through a registered ring descriptor (5.18) spares the kernel a file lookup per
  // io_uring_enter. Only this thread enters this ring; without it the plain descriptor serves.
  (void)io_uring_register_ring_fd(&backend->ring_);
  backend->owner_ = ::pthread_self();

  if (io_uring_probe* probe = io_uring_get_probe_ring(&backend->ring_)) {
    backend->features_.msg_ring = io_uring_opcode_supported(probe, IORING_OP_MSG_RING) != 0;
    io_uring_free_probe(probe);
  }

  backend->eventfd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (backend->eventfd_ < 0) return errno_code(errno);
  backend->arm_eventfd();
  backend->submit_prepared();
  return backend;
}

UringBackend::~UringBackend() {
  // liburing unregisters the ring descriptor in the calling thread's table, by index: on
  // another thread that would drop whatever ring that thread registered there.
  assert(!ring_ready_ || ::pthread_equal(owner_, ::pthread_self()));
  if (ring_ready_) io_uring_queue_exit(&ring_);
  if (eventfd_ >= 0) ::close(eventfd_);
}

io_uring_sqe* UringBackend::sqe() noexcept {
  // An injected failure (tests) is a full submission queue: the loop below runs.
  io_uring_sqe* entry = faults::hit(faults::Site::sqe) ? nullptr : io_uring_get_sqe(&ring_);
  while (entry == nullptr) {
    submit_prepared();
    entry = io_uring_get_sqe(&ring_);
  }
  return entry;
}

void UringBackend::prepare(io_uring_sqe* entry, Completion* completion) noexcept {
  io_uring_sqe_set_data(entry, completion);
  ++in_flight_;
}

void UringBackend::ignore(io_uring_sqe* entry) noexcept { io_uring_sqe_set_data64(entry, kIgnoreTag); }

void UringBackend::submit(const IoRequest& request, Completion* completion,
                          const __kernel_timespec* deadline) noexcept {
  // An operation and its linked timeout must go to the kernel in one submission: a chain
  // split across two would leave the operation without its deadline.
  if (deadline != nullptr && io_uring_sq_space_left(&ring_) < 2) submit_prepared();
  AEM_PROBE_IO_SUBMIT(request.opcode, request.fd, completion);
  io_uring_sqe* entry = sqe();
  const auto length = static_cast<unsigned>(request.length);
  switch (request.opcode) {
    case IoOpcode::read: io_uring_prep_read(entry, request.fd, request.buffer, length, request.offset); break;
    case IoOpcode::write: io_uring_prep_write(entry, request.fd, request.buffer, length, request.offset); break;
    case IoOpcode::readv:
      io_uring_prep_readv(entry, request.fd, static_cast<const iovec*>(request.buffer), length, request.offset);
      break;
    case IoOpcode::writev:
      io_uring_prep_writev(entry, request.fd, static_cast<const iovec*>(request.buffer), length, request.offset);
      break;
    case IoOpcode::recv:
      io_uring_prep_recv(entry, request.fd, request.buffer, request.length, static_cast<int>(request.flags));
      if (request.poll_first && features_.poll_first) entry->ioprio |= IORING_RECVSEND_POLL_FIRST;
      break;
    case IoOpcode::send:
      io_uring_prep_send(entry, request.fd, request.buffer, request.length, static_cast<int>(request.flags));
      break;
    case IoOpcode::recvmsg: io_uring_prep_recvmsg(entry, request.fd, request.message, request.flags); break;
    case IoOpcode::sendmsg: io_uring_prep_sendmsg(entry, request.fd, request.message, request.flags); break;
    case IoOpcode::accept:
      io_uring_prep_accept(entry, request.fd, request.address, request.address_length, static_cast<int>(request.flags));
      break;
    case IoOpcode::connect: io_uring_prep_connect(entry, request.fd, request.address, request.address_size); break;
    case IoOpcode::poll: io_uring_prep_poll_add(entry, request.fd, request.flags); break;
    case IoOpcode::accept_multishot:
      io_uring_prep_multishot_accept(entry, request.fd, nullptr, nullptr, static_cast<int>(request.flags));
      break;
    case IoOpcode::recv_multishot:
      io_uring_prep_recv_multishot(entry, request.fd, nullptr, 0, static_cast<int>(request.flags));
      entry->flags |= IOSQE_BUFFER_SELECT;
      entry->buf_group = request.buffer_group;
      break;
    case IoOpcode::poll_multishot: io_uring_prep_poll_multishot(entry, request.fd, request.flags); break;
  }
  prepare(entry, completion);
  if (deadline != nullptr) {
    // The kernel cancels the operation at the deadline; the timeout's own CQE carries nothing.
    entry->flags |= IOSQE_IO_LINK;
    // Room for both was made above: the timeout's entry is taken directly (and never by an
    // injected "queue full", which would submit the operation without its deadline).
    io_uring_sqe* timer = io_uring_get_sqe(&ring_);
    if (timer == nullptr) timer = sqe();
    io_uring_prep_link_timeout(timer, const_cast<__kernel_timespec*>(deadline), IORING_TIMEOUT_ABS);
    ignore(timer);
  }
}

void UringBackend::cancel(Completion* completion) noexcept {
  io_uring_sqe* entry = sqe();
  io_uring_prep_cancel(entry, completion, 0);
  ignore(entry);
}

int UringBackend::register_buffer_ring(BufferRing& ring) noexcept {
  io_uring_buf_reg registration{};
  registration.ring_addr = reinterpret_cast<std::uintptr_t>(ring.ring());
  registration.ring_entries = ring.entries();
  registration.bgid = ring.group();
  return io_uring_register_buf_ring(&ring_, &registration, 0);
}

void UringBackend::unregister_buffer_ring(BufferRing& ring) noexcept {
  (void)io_uring_unregister_buf_ring(&ring_, ring.group());
}

void UringBackend::arm_eventfd() noexcept {
  io_uring_sqe* entry = sqe();
  io_uring_prep_read(entry, eventfd_, &eventfd_value_, sizeof eventfd_value_, 0);
  io_uring_sqe_set_data64(entry, kEventfdTag);
  eventfd_armed_ = true;
}

BackendStats UringBackend::stats() const noexcept {
  BackendStats stats = stats_;
  // The kernel counts what it had to drop (only without FEAT_NODROP, or out of memory).
  stats.cq_dropped = IO_URING_READ_ONCE(*ring_.cq.koverflow);
  return stats;
}

int UringBackend::submit_prepared() noexcept {
  int rc = io_uring_submit(&ring_);
  // Kernels before 5.19 refuse submissions while overflowed CQEs wait for room. A bound keeps a
  // refusal that emptying the CQ does not cure from spinning: the SQEs stay queued and go with
  // the next submission.
  for (unsigned tries = 0; rc == -EBUSY && tries < 8; ++tries) {
    ++stats_.submit_busy;
    if (stash() == 0 && !io_uring_cq_has_overflow(&ring_)) break;
    rc = io_uring_submit(&ring_);
  }
  return rc;
}

unsigned UringBackend::stash() noexcept {
  // A rare path: allocating here costs nothing that matters.
  const unsigned moved = consume_cq(ring_, [this](const io_uring_cqe& cqe) { backlog_.push_back(cqe); });
  if (io_uring_cq_has_overflow(&ring_)) {
    ++stats_.cq_overflows;
    note_cq_overflow(stats_.cq_overflows);
    io_uring_get_events(&ring_);
  }
  return moved;
}

bool UringBackend::dispatch(const io_uring_cqe& cqe) noexcept {
  const std::uint64_t user_data = cqe.user_data;
  if (is_tag(user_data)) {
    if (user_data == kEventfdTag) {
      eventfd_armed_ = false;
    } else if ((user_data & 7u) == kWakeFailedTag) {
      reinterpret_cast<UringBackend*>(static_cast<std::uintptr_t>(user_data & ~std::uint64_t{7}))->wake(nullptr);
    }
    return false;
  }
  const bool more = (cqe.flags & IORING_CQE_F_MORE) != 0;
  if (!more) --in_flight_;
  std::uint32_t flags = more ? kCompletionMore : 0;
  if ((cqe.flags & IORING_CQE_F_BUFFER) != 0) {
    flags |= kCompletionBuffer | ((cqe.flags >> IORING_CQE_BUFFER_SHIFT) << kCompletionBufferShift);
  }
  auto* completion = reinterpret_cast<Completion*>(static_cast<std::uintptr_t>(user_data));
  AEM_PROBE_IO_COMPLETE(completion, cqe.res, flags);
  completion->complete(completion, cqe.res, flags);
  return true;
}

unsigned UringBackend::reap(std::size_t& delivered) noexcept {
  return consume_cq(ring_, [&](const io_uring_cqe& cqe) {
    if (dispatch(cqe)) ++delivered;
  });
}

std::size_t UringBackend::deliver() noexcept {
  std::size_t delivered = 0;
  if (!backlog_.empty()) {
    // A completion may submit, and a submission may stash more: deliver by index, in order.
    for (std::size_t i = 0; i < backlog_.size(); ++i) {
      const io_uring_cqe entry = backlog_[i];  // a copy: a stash may grow the vector meanwhile
      if (dispatch(entry)) ++delivered;
    }
    backlog_.clear();
  }
  reap(delivered);
  // With FEAT_NODROP the kernel keeps what found the CQ full and says so in the SQ flags; it
  // moves them into the CQ when asked for events. Emptying the CQ made room: fetch them, and
  // repeat until none is left (or the kernel moves none: then the next turn tries again).
  while (io_uring_cq_has_overflow(&ring_)) {
    ++stats_.cq_overflows;
    note_cq_overflow(stats_.cq_overflows);
    io_uring_get_events(&ring_);
    if (reap(delivered) == 0) break;
  }
  if (!eventfd_armed_) arm_eventfd();
  return delivered;
}

std::size_t UringBackend::poll() noexcept {
  if (features_.defer_taskrun && !features_.taskrun_flag) {
    // Deferred task work only runs when we enter the kernel asking for events, and without
    // TASKRUN_FLAG nothing says whether any waits.
    io_uring_submit_and_get_events(&ring_);
  } else {
    // io_uring_submit enters the kernel only with SQEs to submit or with IORING_SQ_TASKRUN /
    // CQ_OVERFLOW set, and then asks for events: a poll with nothing pending is no system call.
    submit_prepared();
  }
  return deliver();
}

bool UringBackend::has_work() const noexcept {
  auto& ring = const_cast<io_uring&>(ring_);
  if (io_uring_sq_ready(&ring) > 0 || !backlog_.empty() || !eventfd_armed_) return true;
  if (!features_.taskrun_flag) return in_flight_ > 0;  // task work may wait unseen
  return io_uring_cq_ready(&ring) > 0 ||
         (IO_URING_READ_ONCE(*ring.sq.kflags) & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW)) != 0;
}

std::size_t UringBackend::wait(TimePoint deadline, unsigned min_completions) noexcept {
  if (!backlog_.empty()) return poll();  // completions are waiting already: do not sleep
  io_uring_cqe* cqe = nullptr;
  // With DEFER_TASKRUN the kernel counts the completions it holds as task work against
  // min_completions, so a coalesced wait sleeps through them instead of waking for each.
  min_completions = std::max(min_completions, 1u);
  if (deadline == TimePoint::max()) {
    io_uring_submit_and_wait(&ring_, min_completions);
  } else {
    __kernel_timespec ts = to_timespec(deadline - std::chrono::steady_clock::now());
    io_uring_submit_and_wait_timeout(&ring_, &cqe, min_completions, &ts, nullptr);
  }
  return deliver();
}

void UringBackend::wake(Backend* sender) noexcept {
  auto* from = dynamic_cast<UringBackend*>(sender);
  if (from != nullptr && from->features_.msg_ring) {
    io_uring_sqe* entry = from->sqe();
    io_uring_prep_msg_ring(entry, ring_.ring_fd, 0, kWakeTag, 0);
    io_uring_sqe_set_data64(entry, reinterpret_cast<std::uintptr_t>(this) | kWakeFailedTag);
    entry->flags |= IOSQE_CQE_SKIP_SUCCESS;
    from->submit_prepared();
    return;
  }
  const std::uint64_t one = 1;
  [[maybe_unused]] ssize_t written = ::write(eventfd_, &one, sizeof one);
}

void UringBackend::cancel_all() noexcept {
  if (in_flight_ == 0) return;
  io_uring_sqe* entry = sqe();
  io_uring_prep_cancel(entry, nullptr, IORING_ASYNC_CANCEL_ANY);
  io_uring_sqe_set_data64(entry, kIgnoreTag);
  submit_prepared();
}

}  // namespace aem::detail
