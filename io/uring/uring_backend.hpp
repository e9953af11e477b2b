// uring_backend.hpp — the io_uring backend: one ring per core, created on the core's thread.
#pragma once

#include "io/backend.hpp"

#include <aem/result.hpp>

#include <liburing.h>
#include <pthread.h>

#include <memory>
#include <vector>

namespace aem::detail {

class UringBackend final : public Backend {
 public:
  // create sets up a ring of `sizes` (validated by the caller: see validate_ring_sizes) on the
  // calling thread, asking for SINGLE_ISSUER + DEFER_TASKRUN + COOP_TASKRUN + TASKRUN_FLAG and
  // downgrading step by step to what the kernel accepts. The ring's descriptor is registered
  // with the calling thread, so that thread alone uses the backend and destroys it.
  // Errors: the errno of io_uring_setup (ENOSYS, EPERM under seccomp or
  // kernel.io_uring_disabled, ENOMEM for locked memory, EINVAL for sizes it refuses) or of
  // eventfd.
  static Result<std::unique_ptr<UringBackend>> create(RingSizes sizes) noexcept;
  ~UringBackend() override;

  const char* name() const noexcept override { return "io_uring"; }
  const BackendFeatures& features() const noexcept override { return features_; }
  BackendStats stats() const noexcept override;
  std::size_t poll() noexcept override;
  std::size_t wait(TimePoint deadline, unsigned min_completions) noexcept override;
  void wake(Backend* sender) noexcept override;
  std::size_t in_flight() const noexcept override { return in_flight_; }
  void cancel_all() noexcept override;
  // has_work is exact with TASKRUN_FLAG (SQEs to submit, CQEs to reap, task work or overflowed
  // CQEs in the kernel): a core with only idle multishot operations in flight then neither
  // enters the kernel per loop turn nor leaves a yielding capsule for nothing. Without the
  // flag, any operation in flight counts.
  bool has_work() const noexcept override;

  void submit(const IoRequest& request, Completion* completion, const __kernel_timespec* deadline) noexcept override;
  void cancel(Completion* completion) noexcept override;
  int register_buffer_ring(BufferRing& ring) noexcept override;
  void unregister_buffer_ring(BufferRing& ring) noexcept override;

  // sqe returns a free submission entry, submitting the queue first if it is full.
  // Call on the core's thread. Never returns nullptr. For operations IoRequest cannot say.
  io_uring_sqe* sqe() noexcept;

  // prepare counts one more operation in flight for `completion` (set as the SQE's user_data).
  void prepare(io_uring_sqe* sqe, Completion* completion) noexcept;

  // ignore marks an SQE whose completion carries nothing to deliver (e.g. a link timeout).
  static void ignore(io_uring_sqe* sqe) noexcept;

 private:
  UringBackend() = default;
  // submit_prepared submits the SQ, and while the kernel refuses with -EBUSY (a CQ overflow it
  // cannot flush) moves the CQ's entries to backlog_ to make room, so a submission never waits
  // on a reap that only poll()/wait() may do. Returns io_uring_submit's result.
  int submit_prepared() noexcept;
  // stash moves every CQE in the CQ to backlog_ and asks the kernel to flush what overflowed.
  // Returns how many it moved.
  unsigned stash() noexcept;
  // deliver hands the backlog, then the CQ, to their completions; while the kernel holds
  // overflowed completions (IORING_SQ_CQ_OVERFLOW) it fetches them and goes on.
  std::size_t deliver() noexcept;
  // reap delivers the entries now in the CQ and returns how many it consumed.
  unsigned reap(std::size_t& delivered) noexcept;
  // dispatch delivers one CQE: to its Completion, or to the tag it carries.
  bool dispatch(const io_uring_cqe& cqe) noexcept;
  void arm_eventfd() noexcept;

  io_uring ring_{};
  bool ring_ready_ = false;
  pthread_t owner_{};  // the thread that created the ring and registered its descriptor
  BackendFeatures features_;
  std::size_t in_flight_ = 0;
  int eventfd_ = -1;
  std::uint64_t eventfd_value_ = 0;
  bool eventfd_armed_ = false;
  BackendStats stats_;
  // backlog_ holds CQEs taken out of a full CQ while submitting (see submit_prepared), for
  // the next deliver(): completions are only delivered from poll() and wait().
  std::vector<io_uring_cqe> backlog_;
};

}  // namespace aem::detail
