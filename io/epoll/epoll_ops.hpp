// epoll_ops.hpp — the system calls behind each IoOpcode on the epoll backend, made so that they
// never block the core's thread where the kernel lets us avoid it:
//   sockets       recv/send/…msg with MSG_DONTWAIT, read/write with RWF_NOWAIT;
//   pipes, eventfds, ttys  read/write with RWF_NOWAIT; where the fd does not support it, a
//                 non-blocking fd is simply called, a blocking one is polled for readiness
//                 first (and a write then limited to PIPE_BUF, which cannot block once the fd
//                 is writable);
//   accept        on a non-blocking socket called at once, on a blocking one after readiness;
//                 between that check and the call another thread may take what was ready, and
//                 the call then blocks: fds that several cores use should be O_NONBLOCK;
//   connect       on a blocking socket made non-blocking for the call only, then EINPROGRESS →
//                 wait for writability → SO_ERROR;
//   regular files, block devices and directories  plain blocking calls, synchronously: epoll
//                 cannot wait for them (epoll_ctl gives EPERM), and the page cache makes most
//                 such calls short. The capsule-facing read / write / read_at / write_at send
//                 them to the runtime's blocking pool instead, so a slow disk does not stall the
//                 core; what still arrives here (the pool's queue full) runs on the core.
// When an attempt finds nothing to do (EAGAIN), the backend queues the operation on its fd and
// attempts it again when epoll reports the fd ready.
#pragma once

#include "io/backend.hpp"
#include "io/epoll/deadline_heap.hpp"
#include "io/epoll/epoll_interest.hpp"

#include <climits>
#include <cstddef>
#include <cstdint>

namespace aem::detail {

// OpMode says how an operation's system call is kept from blocking.
enum class OpMode : std::uint8_t {
  dont_wait,        // a flag makes the call non-blocking (MSG_DONTWAIT, RWF_NOWAIT, poll(0))
  nonblocking_fd,   // the fd is O_NONBLOCK
  readiness_first,  // a blocking fd: poll it without timeout first, call only when ready
  connecting,       // connect is in progress: wait for writability, then read SO_ERROR
  synchronous,      // regular files and the like: plain blocking calls
};

// kPending is what an attempt returns when the operation must wait for its fd.
inline constexpr int kPending = INT_MIN;

// EpollOp is one operation the epoll backend accepted and has not finished.
struct EpollOp : FdWaiter {
  Completion* completion = nullptr;
  IoRequest request;
  std::int64_t deadline_ns = 0;  // CLOCK_MONOTONIC; meaningful while heap_slot != kNotInHeap
  std::size_t heap_slot = kNotInHeap;
  EpollOp* live_prev = nullptr;  // the backend's list of waiting operations (for cancel)
  EpollOp* live_next = nullptr;
  std::size_t done = 0;  // recv/send with MSG_WAITALL: bytes moved by earlier attempts
  BufferRing* ring = nullptr;    // recv_multishot: the provided buffers (nullptr: no such group)
  std::uint16_t buffer_id = 0;   // recv_multishot: the buffer the last receive filled
  OpMode mode = OpMode::dont_wait;
};

// is_multishot tells whether `opcode` completes more than once.
constexpr bool is_multishot(IoOpcode opcode) noexcept {
  return opcode == IoOpcode::accept_multishot || opcode == IoOpcode::recv_multishot ||
         opcode == IoOpcode::poll_multishot;
}

// is_transfer tells whether `opcode` is read, write, readv or writev.
constexpr bool is_transfer(IoOpcode opcode) noexcept {
  return opcode == IoOpcode::read || opcode == IoOpcode::write || opcode == IoOpcode::readv ||
         opcode == IoOpcode::writev;
}

// completes_more tells whether result `rc` of a multishot operation is one of several (the
// operation goes on) and sets the completion flags for it.
inline bool completes_more(const EpollOp& op, int rc, std::uint32_t& flags) noexcept {
  if (op.request.opcode == IoOpcode::accept_multishot && rc >= 0) {
    flags = kCompletionMore;
    return true;
  }
  if (op.request.opcode == IoOpcode::recv_multishot && rc > 0) {
    flags = kCompletionMore | kCompletionBuffer | (std::uint32_t{op.buffer_id} << kCompletionBufferShift);
    return true;
  }
  return false;
}

// prepare_op sets the fd, wait kind and mode of `op` from its request, before the first
// attempt. Returns 0, or -errno when the fd cannot be inspected (EBADF).
int prepare_op(EpollOp& op) noexcept;

// attempt makes the operation's system call once, if it cannot block. Returns the result
// (>= 0, for poll the revents), -errno, or kPending. For accept_multishot it accepts one
// connection per call. Call on the backend's thread.
int attempt(EpollOp& op) noexcept;

// attempt_blocking makes the call of a read/write/readv/writev in blocking form: for fds that
// epoll cannot wait for. Returns the result or -errno.
int attempt_blocking(EpollOp& op) noexcept;

// cancelled_result is what a cancelled or timed-out operation completes with: -ECANCELED, or
// the bytes a MSG_WAITALL transfer had already moved (as io_uring reports them).
int cancelled_result(const EpollOp& op) noexcept;

}  // namespace aem::detail
