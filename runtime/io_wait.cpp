#include "runtime/io_wait.hpp"

#include "runtime/core.hpp"
#include "runtime/runtime_impl.hpp"

namespace aem::detail {
namespace {

void on_complete(Completion* completion, int result, bool more) noexcept {
  auto* wait = reinterpret_cast<IoWait*>(completion);  // completion is IoWait's first member
  if (more) return;  // awaited operations are single-shot
  wait->result = result;
  wait->done = true;
  Core::wake(wait->capsule);
}

}  // namespace

io_uring_sqe* io_begin(IoWait& wait, int& error) noexcept {
  Core* core = Core::current_core();
  if (core == nullptr || core->current() == nullptr) {
    error = -EPERM;
    return nullptr;
  }
  if (core->runtime().stopping()) {
    error = -ECANCELED;
    return nullptr;
  }
  wait.capsule = core->current();
  wait.completion.complete = &on_complete;
  io_uring_sqe* sqe = core->backend().sqe();
  return sqe;
}

int io_finish(IoWait& wait, io_uring_sqe* sqe, Deadline deadline) noexcept {
  Core* core = wait.capsule->core;
  UringBackend& backend = core->backend();
  backend.prepare(sqe, &wait.completion);
  if (!deadline.is_never()) {
    // The kernel cancels the operation at the deadline (CLOCK_MONOTONIC, the steady clock).
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_point().time_since_epoch()).count();
    wait.timeout.tv_sec = ns < 0 ? 0 : ns / 1'000'000'000;
    wait.timeout.tv_nsec = ns < 0 ? 0 : ns % 1'000'000'000;
    sqe->flags |= IOSQE_IO_LINK;
    io_uring_sqe* timer = backend.sqe();
    io_uring_prep_link_timeout(timer, &wait.timeout, IORING_TIMEOUT_ABS);
    UringBackend::ignore(timer);
  }
  // Not interruptible: the record must outlive the operation. At shutdown the core cancels
  // every operation, so this wait still ends.
  while (!wait.done) core->suspend();
  return wait.result;
}

}  // namespace aem::detail
