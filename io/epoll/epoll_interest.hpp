// epoll_interest.hpp — the epoll backend's fd-interest table: for every fd that operations wait
// on, the FIFO lists of its waiters (readers, writers, pollers) and the one epoll registration
// that covers them all, so a read and a write may wait on one socket at once.
//
// Registrations are edge-triggered and live only while an fd has waiters: a registration left
// behind after its last waiter could outlive the fd's number (close, then a new file under the
// same number) and silently miss events of the new file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace aem::detail {

// WaitKind names the waiter list of an fd: reader and writer waiters retry their system call
// when the fd becomes readable / writable; pollers report the readiness itself.
enum class WaitKind : std::uint8_t { reader, writer, poller };

// FdWaiter is the link an operation uses to wait on an fd (operations derive from it).
struct FdWaiter {
  FdWaiter* prev = nullptr;
  FdWaiter* next = nullptr;
  std::uint32_t poll_mask = 0;  // pollers: the POLL* bits they wait for
  int fd = -1;
  WaitKind kind = WaitKind::reader;
  bool queued = false;
};

// FdWaitList is an intrusive FIFO of fd waiters (not detail::WaitList, the capsule waiters' list).
class FdWaitList {
 public:
  bool empty() const noexcept { return head_ == nullptr; }
  FdWaiter* front() const noexcept { return head_; }
  void push_back(FdWaiter* waiter) noexcept;
  void erase(FdWaiter* waiter) noexcept;

 private:
  FdWaiter* head_ = nullptr;
  FdWaiter* tail_ = nullptr;
};

// FdInterest is the table's entry of one fd.
struct FdInterest {
  FdWaitList lists[3];          // indexed by WaitKind
  std::uint32_t registered = 0;  // the events epoll watches for this fd; 0: not registered
};

class InterestTable {
 public:
  // InterestTable works on `epoll_fd`, which the caller owns and keeps open.
  explicit InterestTable(int epoll_fd) noexcept : epoll_fd_(epoll_fd) {}

  // add queues `waiter` (not queued; fd and kind set) behind the other waiters of its fd and
  // kind, and extends the fd's registration to cover it. With `rearm` the registration is
  // renewed even if it covers the waiter already, so epoll reports the fd's present readiness
  // once more (a new multishot poller needs that first report). Returns 0, or -errno from
  // epoll_ctl (EPERM: the fd cannot be polled, e.g. a regular file) or -ENOMEM; the waiter is
  // not queued then.
  int add(FdWaiter* waiter, bool rearm = false) noexcept;

  // remove unqueues `waiter` if it is queued. The registration keeps covering it until
  // sync(fd): a caller removing several waiters updates the kernel once.
  void remove(FdWaiter* waiter) noexcept;

  // find returns the entry of `fd`, or nullptr when no waiter was ever queued on it.
  FdInterest* find(int fd) noexcept;

  // sync makes the registration of `fd` watch exactly what its waiters need, and removes it
  // when none is left; `rearm`: see add. Returns 0 or -errno from epoll_ctl.
  int sync(int fd, bool rearm = false) noexcept;

  // registered_fds returns how many fds epoll watches for waiters now.
  std::size_t registered_fds() const noexcept { return registered_fds_; }

 private:
  static std::uint32_t wanted(const FdInterest& entry) noexcept;

  int epoll_fd_;
  std::vector<FdInterest> entries_;  // indexed by fd: fds are small and dense
  std::size_t registered_fds_ = 0;
};

}  // namespace aem::detail
