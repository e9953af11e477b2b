// shared_fd.cpp — SharedFd: cancel and close reach the capsules blocked on a descriptor.
//
// Locking: lock_ guards the slot list, closing_fd_ and changes of fd_. It is never held across
// a wake-up (which may make a system call) or ::close: cancellers chain the slots to wake and
// wake them after unlocking. A chained slot cannot go away meanwhile — its capsule cannot
// leave perform() before the wake-up that the canceller owes it (see runtime/io_wait.cpp).
#include "runtime/sched/core.hpp"

#include <aem/detail/shared_fd.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace aem::detail {

SharedFd& SharedFd::operator=(SharedFd&& other) noexcept {
  if (this != &other) {
    (void)close();
    fd_.store(other.release(), std::memory_order_release);
  }
  return *this;
}

int SharedFd::enter(IoCancelSlot* slot) noexcept {
  Core* core = Core::current_core();
  slot->capsule = core != nullptr ? core->current() : nullptr;
  if (slot->capsule == nullptr) return -1;
  lock_.lock();
  const int fd = fd_.load(std::memory_order_relaxed);
  if (fd >= 0) {
    slot->prev = nullptr;
    slot->next = head_;
    if (head_ != nullptr) head_->prev = slot;
    head_ = slot;
  }
  lock_.unlock();
  return fd;
}

void SharedFd::leave(IoCancelSlot* slot) noexcept {
  lock_.lock();
  if (slot->prev != nullptr) slot->prev->next = slot->next;
  else head_ = slot->next;
  if (slot->next != nullptr) slot->next->prev = slot->prev;
  int to_close = -1;
  if (head_ == nullptr && detached_ == 0) std::swap(to_close, closing_fd_);
  lock_.unlock();
  if (to_close >= 0) ::close(to_close);
}

int SharedFd::enter_detached() noexcept {
  lock_.lock();
  const int fd = fd_.load(std::memory_order_relaxed);
  if (fd >= 0) ++detached_;
  lock_.unlock();
  return fd;
}

void SharedFd::leave_detached() noexcept {
  lock_.lock();
  assert(detached_ > 0);
  int to_close = -1;
  if (--detached_ == 0 && head_ == nullptr) std::swap(to_close, closing_fd_);
  lock_.unlock();
  if (to_close >= 0) ::close(to_close);
}

int SharedFd::hand_over_detached() noexcept {
  lock_.lock();
  int fd = -1;
  if (head_ == nullptr) {
    fd = fd_.exchange(-1, std::memory_order_acq_rel);
    if (fd < 0) std::swap(fd, closing_fd_);
    detached_ = 0;
  }
  lock_.unlock();
  return fd;
}

IoCancelSlot* SharedFd::cancel_locked() noexcept {
  IoCancelSlot* chain = nullptr;
  for (IoCancelSlot* slot = head_; slot != nullptr; slot = slot->next) {
    slot->requested.store(true, std::memory_order_release);
    if (!slot->wake_pending.exchange(true, std::memory_order_acq_rel)) {
      slot->wake_next = chain;
      chain = slot;
    }
  }
  return chain;
}

void SharedFd::wake_chain(IoCancelSlot* chain) noexcept {
  while (chain != nullptr) {
    IoCancelSlot* next = chain->wake_next;  // read first: once woken, the slot may be gone
    Core::wake(static_cast<CapsuleControl*>(chain->capsule));
    chain = next;
  }
}

void SharedFd::cancel() noexcept {
  lock_.lock();
  IoCancelSlot* chain = cancel_locked();
  lock_.unlock();
  wake_chain(chain);
}

int SharedFd::close() noexcept {
  lock_.lock();
  const int fd = fd_.exchange(-1, std::memory_order_acq_rel);
  IoCancelSlot* chain = nullptr;
  bool deferred = false;
  bool detached = false;
  if (fd >= 0 && (head_ != nullptr || detached_ > 0)) {
    // The operations still use the descriptor: for the epoll backend it is the key of their
    // registration, and a number reused by another open must not receive their cancel (or, for
    // a detached send not yet submitted, its bytes).
    closing_fd_ = fd;
    chain = cancel_locked();
    deferred = true;
    detached = detached_ > 0;
    if (detached) ++detached_;  // holds the number open for the shutdown below
  }
  lock_.unlock();
  wake_chain(chain);
  // Detached operations have no capsule to wake; shutting the socket down ends them (a send
  // waiting for a peer that never reads fails with EPIPE), and the last one closes the number.
  if (detached) {
    (void)::shutdown(fd, SHUT_RDWR);
    leave_detached();
  }
  if (fd < 0 || deferred) return 0;
  return ::close(fd) == 0 ? 0 : errno;
}

int SharedFd::release() noexcept {
  lock_.lock();
  int fd = -1;
  if (head_ == nullptr && detached_ == 0) fd = fd_.exchange(-1, std::memory_order_acq_rel);
  lock_.unlock();
  return fd;
}

}  // namespace aem::detail
