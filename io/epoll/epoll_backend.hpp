// epoll_backend.hpp — the fallback backend for kernels or sandboxes without io_uring (ENOSYS,
// EPERM under seccomp or kernel.io_uring_disabled). It keeps io_uring's observable contract:
//   - an operation is first tried at once with a call that cannot block (see epoll_ops.hpp);
//     when the fd has nothing for it, it waits in its fd's FIFO (epoll_interest.hpp) and is
//     tried again when epoll reports the fd ready — so several operations, a read and a write
//     say, wait on one fd under one registration;
//   - completions, immediate ones included, are delivered only from poll() and wait(), never
//     from inside submit(), just as io_uring only completes when its CQ is reaped;
//   - an operation still waiting at its deadline completes with -ECANCELED (io_uring's linked
//     timeout), as does a cancelled one; multishot operations end with a final completion;
//   - wake() from any thread writes an eventfd that epoll watches.
// recv_multishot takes its buffers from the registered BufferRing in user space, as the kernel
// would. Not yet: recvmsg/sendmsg with MSG_WAITALL may return short.
// Regular files are read and written synchronously (epoll cannot wait for them). An fd closed
// while an operation waits on it ends its registration: the operation then waits for its
// deadline or cancel (io_uring would keep the file open until the operation ends).
#pragma once

#include "io/backend.hpp"
#include "io/epoll/deadline_heap.hpp"
#include "io/epoll/epoll_interest.hpp"
#include "io/epoll/epoll_ops.hpp"

#include <aem/result.hpp>

#include <sys/epoll.h>

#include <memory>
#include <vector>

namespace aem::detail {

class EpollBackend final : public Backend {
 public:
  // create makes the epoll instance and the wake-up eventfd. Call on the core's thread.
  // Errors: the errno of epoll_create1 or eventfd (EMFILE, ENOMEM).
  static Result<std::unique_ptr<EpollBackend>> create() noexcept;
  ~EpollBackend() override;

  const char* name() const noexcept override { return "epoll"; }
  const BackendFeatures& features() const noexcept override { return features_; }
  void submit(const IoRequest& request, Completion* completion, const __kernel_timespec* deadline) noexcept override;
  void cancel(Completion* completion) noexcept override;
  std::size_t poll() noexcept override;
  std::size_t wait(TimePoint deadline, unsigned min_completions) noexcept override;
  void wake(Backend* sender) noexcept override;
  std::size_t in_flight() const noexcept override { return in_flight_; }
  bool has_work() const noexcept override { return in_flight_ > 0; }
  void cancel_all() noexcept override;
  int register_buffer_ring(BufferRing& ring) noexcept override;
  void unregister_buffer_ring(BufferRing& ring) noexcept override;

 private:
  // Delivery is one completion waiting for the next poll()/wait().
  struct Delivery {
    Completion* completion;
    int result;
    std::uint32_t flags;
  };

  EpollBackend() : interest_(-1) {}
  BufferRing* find_ring(std::uint16_t group) const noexcept;
  EpollOp* allocate() noexcept;
  void release(EpollOp* op) noexcept;
  void start(EpollOp* op, bool has_deadline) noexcept;
  void park(EpollOp* op, bool has_deadline) noexcept;
  void finish(EpollOp* op, int result) noexcept;
  void emit(Completion* completion, int result, std::uint32_t flags) noexcept;
  void on_ready(int fd, std::uint32_t events) noexcept;
  void service(FdWaitList& list) noexcept;
  void service_pollers(FdWaitList& list, std::uint32_t events) noexcept;
  void expire() noexcept;
  // reap waits up to `timeout` for epoll events and delivers what completed; `events` (optional)
  // tells whether epoll reported any event, a wake-up included.
  std::size_t reap(const timespec* timeout, bool* events = nullptr) noexcept;
  std::size_t deliver() noexcept;

  int epoll_fd_ = -1;
  int eventfd_ = -1;
  BackendFeatures features_;  // none of io_uring's: all false
  InterestTable interest_;
  DeadlineHeap<EpollOp> deadlines_;
  EpollOp* live_ = nullptr;  // operations waiting on an fd, for cancel
  EpollOp* free_ = nullptr;  // pooled records, linked through live_next
  std::vector<std::unique_ptr<EpollOp[]>> chunks_;
  std::vector<BufferRing*> rings_;  // registered provided-buffer rings
  std::vector<Delivery> ready_;
  std::vector<Delivery> delivering_;
  std::size_t in_flight_ = 0;
  epoll_event events_[64];
};

}  // namespace aem::detail
