// uring_backend.hpp — the io_uring backend: one ring per core, created on the core's thread.
#pragma once

#include "io/backend.hpp"

#include <aem/result.hpp>

#include <liburing.h>

#include <memory>

namespace aem::detail {

class UringBackend final : public Backend {
 public:
  // create sets up a ring of `entries` on the calling thread, asking for SINGLE_ISSUER +
  // DEFER_TASKRUN + COOP_TASKRUN and downgrading step by step to what the kernel accepts.
  // Errors: the errno of io_uring_setup (ENOSYS, EPERM under seccomp or
  // kernel.io_uring_disabled, ENOMEM for locked memory) or of eventfd.
  static Result<std::unique_ptr<UringBackend>> create(unsigned entries) noexcept;
  ~UringBackend() override;

  const char* name() const noexcept override { return "io_uring"; }
  const BackendFeatures& features() const noexcept override { return features_; }
  std::size_t poll() noexcept override;
  std::size_t wait(TimePoint deadline) noexcept override;
  void wake(Backend* sender) noexcept override;
  std::size_t in_flight() const noexcept override { return in_flight_; }
  void cancel_all() noexcept override;
  bool has_work() const noexcept override {
    return in_flight_ > 0 || io_uring_sq_ready(const_cast<io_uring*>(&ring_)) > 0;
  }

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

  io_uring& ring() noexcept { return ring_; }

  int ring_fd() const noexcept { return ring_.ring_fd; }

 private:
  UringBackend() = default;
  std::size_t deliver() noexcept;
  void arm_eventfd() noexcept;

  io_uring ring_{};
  bool ring_ready_ = false;
  BackendFeatures features_;
  std::size_t in_flight_ = 0;
  int eventfd_ = -1;
  std::uint64_t eventfd_value_ = 0;
  bool eventfd_armed_ = false;
};

}  // namespace aem::detail
