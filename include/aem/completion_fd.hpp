// completion_fd.hpp — aem::CompletionFd<T>: results handed from capsules (or any thread) to a
// foreign event loop — poll(2), epoll, libevent, a GUI toolkit — through a descriptor that is
// readable while results wait.
#pragma once

#include <aem/error.hpp>
#include <aem/export.hpp>
#include <aem/result.hpp>

#include <cstddef>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace aem {

namespace detail {

// ReadinessFd is the descriptor half of CompletionFd: a non-blocking eventfd whose readability
// says "look at the queue". Move-only; closes its descriptor when destroyed.
class AEM_EXPORT ReadinessFd {
 public:
  // open creates the eventfd. Errors: the errno of eventfd(2) (EMFILE, ENFILE, ENOMEM).
  static Result<ReadinessFd> open() noexcept;

  ReadinessFd(ReadinessFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  ReadinessFd& operator=(ReadinessFd&& other) noexcept;
  ReadinessFd(const ReadinessFd&) = delete;
  ReadinessFd& operator=(const ReadinessFd&) = delete;
  ~ReadinessFd();

  int fd() const noexcept { return fd_; }
  // raise makes the descriptor readable. Any thread or capsule: one write(2), never blocks.
  void raise() const noexcept;
  // lower makes it not readable until the next raise. Any thread: one read(2), never blocks.
  void lower() const noexcept;

 private:
  explicit ReadinessFd(int fd) noexcept : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace detail

// CompletionFd<T> is an unbounded FIFO queue of T between any number of posters — capsules on
// any core, or plain threads — and a consumer that runs its own event loop: fd() is readable
// whenever values wait, so the loop polls it beside its other descriptors and calls drain()
// when it fires. This is how a program that is not built on aem gets aem's results without
// blocking a thread on a std::future.
//
// A CompletionFd is a handle: copies share one queue and one descriptor, which closes when the
// last copy goes. Posting and draining take a mutex for one push or one buffer swap, never
// while user code runs, so a capsule that posts is delayed at most by such a step of another
// thread. fd() turns readable on the post that finds the queue empty (one write(2) per batch,
// not per value) and is lowered by the drain that empties it. A poller may see an occasional
// readiness with nothing left to drain (a drain took the values between the post and its
// write); no value is ever posted without the descriptor being readable until it is drained.
//
// After close(), post() fails with errc::channel_closed; values posted before stay drainable
// and fd() stays readable, so a loop that sleeps on it wakes up and sees closed().
//
// Example:
//   auto results = aem::CompletionFd<Reply>::create().value();
//   (void)runtime.submit(0, [results] { (void)results.post(fetch()); });  // in a capsule
//   // the foreign loop:
//   pollfd fds[] = {{results.fd(), POLLIN, 0}, /* its own descriptors */};
//   std::vector<Reply> ready;
//   while (poll(fds, 1, -1) > 0) {
//     results.drain(ready);
//     for (Reply& r : ready) handle(r);
//     ready.clear();  // keeps the buffer: the next drain swaps it in instead of allocating
//   }
template <typename T>
class CompletionFd {
 public:
  // create makes a new, open queue and its descriptor. Any thread or capsule.
  // Errors: the errno of eventfd(2) (EMFILE, ENFILE, ENOMEM); std::bad_alloc is thrown.
  static Result<CompletionFd> create() {
    auto ready = detail::ReadinessFd::open();
    if (!ready) return ready.error();
    return CompletionFd(std::make_shared<State>(std::move(*ready)));
  }

  // fd returns the descriptor to poll for POLLIN (epoll: EPOLLIN); -1 for a moved-from
  // handle. Do not read, write or close it: drain() keeps its state.
  int fd() const noexcept { return state_ ? state_->ready.fd() : -1; }

  // post appends `value` to the queue and makes fd() readable. Any thread or capsule.
  // Errors: errc::channel_closed after close(); errc::invalid_argument on a moved-from handle.
  // Throws what moving T or growing the queue throws (std::bad_alloc).
  Result<void> post(T value) const {
    if (!state_) return errc::invalid_argument;
    bool was_empty = false;
    {
      const std::lock_guard lock(state_->mutex);
      if (state_->closed) return errc::channel_closed;
      was_empty = state_->values.empty();
      state_->values.push_back(std::move(value));
    }
    // Outside the lock: a system call there would hold up every other poster. A drain that
    // runs before this write leaves a spurious readiness behind, never a missed one.
    if (was_empty) state_->ready.raise();
    return {};
  }

  // drain moves every waiting value to the end of `out`, in posting order, lowers fd()
  // (unless closed) and returns how many it moved. When `out` is empty the two buffers are
  // swapped instead of copied, so a consumer that clears and reuses one vector makes the
  // queue allocation-free once both buffers have grown. Any thread or capsule; 0 on a
  // moved-from handle. Throws what moving T or growing `out` throws.
  std::size_t drain(std::vector<T>& out) const {
    if (!state_) return 0;
    const std::lock_guard lock(state_->mutex);
    const std::size_t count = state_->values.size();
    if (out.empty()) {
      out.swap(state_->values);
    } else {
      out.insert(out.end(), std::make_move_iterator(state_->values.begin()),
                 std::make_move_iterator(state_->values.end()));
      state_->values.clear();
    }
    // Under the lock: every raise already made belongs to a value taken above, so lowering
    // here cannot hide a value that is still queued.
    if (!state_->closed) state_->ready.lower();
    return count;
  }

  // close refuses further posts and leaves fd() readable for good. Any thread or capsule;
  // idempotent; nothing on a moved-from handle.
  void close() const noexcept {
    if (!state_) return;
    {
      const std::lock_guard lock(state_->mutex);
      if (state_->closed) return;
      state_->closed = true;
    }
    state_->ready.raise();
  }

  // closed reports whether close() was called (on any copy). Any thread or capsule.
  bool closed() const noexcept {
    if (!state_) return true;
    const std::lock_guard lock(state_->mutex);
    return state_->closed;
  }

 private:
  struct State {
    explicit State(detail::ReadinessFd fd) : ready(std::move(fd)) {}
    mutable std::mutex mutex;
    std::vector<T> values;
    bool closed = false;
    detail::ReadinessFd ready;
  };

  explicit CompletionFd(std::shared_ptr<State> state) noexcept : state_(std::move(state)) {}

  std::shared_ptr<State> state_;
};

}  // namespace aem
