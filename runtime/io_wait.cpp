#include "runtime/io_wait.hpp"

#include "runtime/core.hpp"
#include "runtime/runtime_impl.hpp"

#include <cerrno>

namespace aem::detail {
namespace {

// IoWait is the completion record of one awaited operation.
struct IoWait {
  Completion completion;
  CapsuleControl* capsule = nullptr;
  int result = 0;
  bool done = false;
};

void on_complete(Completion* completion, int result, std::uint32_t flags) noexcept {
  auto* wait = reinterpret_cast<IoWait*>(completion);  // completion is IoWait's first member
  if ((flags & kCompletionMore) != 0) return;  // awaited operations are single-shot
  wait->result = result;
  wait->done = true;
  Core::wake(wait->capsule);
}

}  // namespace

int perform(const IoRequest& request, Deadline deadline) noexcept {
  Core* core = Core::current_core();
  if (core == nullptr || core->current() == nullptr) return -EPERM;
  if (core->runtime().stopping()) return -ESHUTDOWN;
  IoWait wait;
  wait.capsule = core->current();
  wait.completion.complete = &on_complete;
  __kernel_timespec timeout{};
  if (!deadline.is_never()) {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_point().time_since_epoch()).count();
    timeout.tv_sec = ns < 0 ? 0 : ns / 1'000'000'000;
    timeout.tv_nsec = ns < 0 ? 0 : ns % 1'000'000'000;
  }
  core->backend().submit(request, &wait.completion, deadline.is_never() ? nullptr : &timeout);
  // Not interruptible: the record must outlive the operation. At shutdown the core cancels
  // every operation, so this wait still ends.
  while (!wait.done) core->suspend();
  return wait.result;
}

}  // namespace aem::detail
