// backend.hpp — how a core talks to the kernel. The core loop sees only this interface, so an
// epoll fallback can share the loop with io_uring.
//
// Error contract of this layer: raw operations report -errno, like cqe->res.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace aem::detail {

// Completion is the record an in-flight operation leaves with the kernel (its user_data).
// It must stay alive until its final completion is delivered, even if its waiter gave up.
struct Completion {
  // complete runs on the core's thread, in the scheduler (never in a capsule); `more` is true
  // when further completions of the same operation will follow (multishot).
  void (*complete)(Completion* self, int result, bool more) noexcept = nullptr;
};

// BackendFeatures says what the kernel granted at setup.
struct BackendFeatures {
  bool single_issuer = false;
  bool defer_taskrun = false;
  bool coop_taskrun = false;
  bool msg_ring = false;
  bool ext_arg = false;  // wait with a timeout without a timeout SQE
};

class Backend {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  virtual ~Backend() = default;

  // name returns "io_uring" or "epoll".
  virtual const char* name() const noexcept = 0;
  virtual const BackendFeatures& features() const noexcept = 0;

  // poll submits what is prepared and delivers the completions that are ready now, without
  // blocking. Returns how many it delivered.
  virtual std::size_t poll() noexcept = 0;

  // wait submits what is prepared and blocks until a completion, a wake() or `deadline`,
  // then delivers what is ready. Returns how many it delivered.
  virtual std::size_t wait(TimePoint deadline) noexcept = 0;

  // wake makes a concurrent or the next wait() return. Call from any thread; `sender` is the
  // calling core's own backend, or nullptr on a thread that is not a core.
  virtual void wake(Backend* sender) noexcept = 0;

  // in_flight returns how many submitted operations have not delivered their final completion.
  virtual std::size_t in_flight() const noexcept = 0;

  // has_work reports whether poll() could deliver or submit anything (cheap, no system call).
  virtual bool has_work() const noexcept = 0;

  // cancel_all asks the kernel to cancel every in-flight operation (their completions still
  // arrive, with -ECANCELED). Used at shutdown.
  virtual void cancel_all() noexcept = 0;
};

}  // namespace aem::detail
