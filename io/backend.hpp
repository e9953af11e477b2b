// backend.hpp — how a core talks to the kernel. The core loop and every I/O call see only this
// interface, so the io_uring backend and the epoll fallback share one loop and one API.
//
// Error contract of this layer: results are -errno, like cqe->res.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <linux/time_types.h>
#include <sys/socket.h>
#include <sys/uio.h>

namespace aem::detail {

class BufferRing;

// Completion flags passed to Completion::complete.
inline constexpr std::uint32_t kCompletionMore = 1u << 0;    // more completions of this operation follow
inline constexpr std::uint32_t kCompletionBuffer = 1u << 1;  // a provided buffer was used: id in bits 16..31
inline constexpr unsigned kCompletionBufferShift = 16;

// Completion is the record an in-flight operation leaves with the backend. It must stay alive
// until its final completion (one without kCompletionMore) is delivered, even if its waiter
// gave up.
struct Completion {
  // complete runs on the core's thread, in the scheduler or inside Backend::poll/wait (never in
  // a capsule). `result` is the operation's result or -errno; `flags` are kCompletion* bits.
  void (*complete)(Completion* self, int result, std::uint32_t flags) noexcept = nullptr;
};

// IoOpcode names the operations both backends implement with the same semantics.
enum class IoOpcode : std::uint8_t {
  read,             // fd, buffer, length, offset (kCurrentPosition: the file position)
  write,            // fd, buffer, length, offset
  readv,            // fd, iov, length = iov count, offset
  writev,           // fd, iov, length = iov count, offset
  recv,             // fd, buffer, length, flags = MSG_*
  send,             // fd, buffer, length, flags = MSG_*
  recvmsg,          // fd, message, flags = MSG_*
  sendmsg,          // fd, message, flags = MSG_*
  accept,           // fd, address, address_length (in/out), flags = SOCK_*
  connect,          // fd, address, address_size
  poll,             // fd, flags = POLL* mask; result: the revents
  accept_multishot, // fd, flags = SOCK_*; one completion per accepted socket (result = fd)
  recv_multishot,   // fd, buffer_group; one completion per receive, in a provided buffer
  poll_multishot,   // fd, flags = POLL* mask; one completion per readiness change
};

inline constexpr std::uint64_t kCurrentPosition = ~std::uint64_t{0};

// IoRequest describes one operation. Everything it points to must stay valid until the
// operation's final completion.
struct IoRequest {
  IoOpcode opcode = IoOpcode::read;
  int fd = -1;
  std::uint32_t flags = 0;
  void* buffer = nullptr;  // data, or an iovec array
  std::size_t length = 0;  // bytes, or iovec count
  std::uint64_t offset = kCurrentPosition;
  msghdr* message = nullptr;
  sockaddr* address = nullptr;
  socklen_t* address_length = nullptr;  // accept
  socklen_t address_size = 0;           // connect
  std::uint16_t buffer_group = 0;       // recv_multishot
  // poll_first (recv): the caller expects the socket not to be readable yet, so the backend
  // waits for readiness before the first try instead of trying, failing with EAGAIN and then
  // waiting (io_uring's IORING_RECVSEND_POLL_FIRST, where the kernel has it). Only a hint:
  // a ready socket is still served at once, one turn later.
  bool poll_first = false;
};

// BackendFeatures says what the kernel granted at setup.
struct BackendFeatures {
  bool single_issuer = false;
  bool defer_taskrun = false;
  bool coop_taskrun = false;
  bool msg_ring = false;
  bool ext_arg = false;  // wait with a timeout without a timeout SQE
  bool cq_nodrop = false;  // completions that find the CQ full wait in the kernel (FEAT_NODROP)
  bool taskrun_flag = false;  // with DEFER_TASKRUN: the SQ ring's IORING_SQ_TASKRUN says when task work waits
  bool poll_first = false;  // IoRequest::poll_first is honoured
};

// RingSizes are the io_uring queue sizes a backend is made with (Config::ring_entries and
// Config::cq_entries; cq 0 is the kernel's default of twice sq).
struct RingSizes {
  unsigned sq = 256;
  unsigned cq = 0;
  RingSizes(unsigned sq_entries = 256, unsigned cq_entries = 0) noexcept : sq(sq_entries), cq(cq_entries) {}
};

// BackendStats counts what a backend did to keep its completion contract under pressure.
struct BackendStats {
  std::uint64_t cq_overflows = 0;  // times completions were found waiting in the kernel for CQ room
  std::uint64_t cq_dropped = 0;    // completions the kernel could not keep (no FEAT_NODROP, or no memory)
  std::uint64_t submit_busy = 0;   // submissions refused with -EBUSY until the CQ was emptied
};

class Backend {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  virtual ~Backend() = default;

  // name returns "io_uring" or "epoll".
  virtual const char* name() const noexcept = 0;
  virtual const BackendFeatures& features() const noexcept = 0;
  // stats returns the backend's counters (all zero for a backend without a completion queue).
  // Call on the core's thread.
  virtual BackendStats stats() const noexcept { return {}; }

  // submit starts `request`; its completions go to `completion`. With a `deadline` (absolute,
  // CLOCK_MONOTONIC = the steady clock; it must stay valid until the final completion) an
  // operation still pending then completes with -ECANCELED. Call on the core's thread.
  virtual void submit(const IoRequest& request, Completion* completion, const __kernel_timespec* deadline) noexcept = 0;

  // cancel asks to stop the operation of `completion` (multishot ones included). Its final
  // completion still arrives: -ECANCELED, or the result if it had already finished.
  virtual void cancel(Completion* completion) noexcept = 0;

  // register_buffer_ring makes `ring` the provider of buffer group ring.group() for
  // recv_multishot. Returns 0 or -errno. The ring must stay registered while an operation may
  // use it. Call on the core's thread.
  virtual int register_buffer_ring(BufferRing& ring) noexcept = 0;
  // unregister_buffer_ring withdraws it; no operation may be using the group any more.
  virtual void unregister_buffer_ring(BufferRing& ring) noexcept = 0;

  // poll submits what is prepared and delivers the completions that are ready now, without
  // blocking. Returns how many it delivered.
  virtual std::size_t poll() noexcept = 0;

  // wait submits what is prepared and blocks until `min_completions` completions are ready
  // (1: the first one; a wake() counts as one), or `deadline`, then delivers what is ready.
  // Returns how many it delivered. With min_completions > 1 (Config::coalesce_window) a wake()
  // may not end the wait early, and a backend that cannot count completions while asleep
  // (epoll) sleeps until `deadline`, which must then be finite.
  virtual std::size_t wait(TimePoint deadline, unsigned min_completions) noexcept = 0;

  // wake makes a concurrent or the next wait() return. Call from any thread; `sender` is the
  // calling core's own backend, or nullptr on a thread that is not a core.
  virtual void wake(Backend* sender) noexcept = 0;

  // in_flight returns how many submitted operations have not delivered their final completion.
  virtual std::size_t in_flight() const noexcept = 0;

  // has_work reports whether poll() could deliver or submit anything (cheap, no system call).
  // Exact where features().taskrun_flag; otherwise any operation in flight counts as work.
  virtual bool has_work() const noexcept = 0;

  // cancel_all asks the kernel to cancel every in-flight operation (their completions still
  // arrive, with -ECANCELED). Used at shutdown.
  virtual void cancel_all() noexcept = 0;

  // set_overflow_hook has the backend call `hook(context, total)`, on the core's thread, each
  // time it counts a CQ overflow (total: BackendStats::cq_overflows after it); the runtime turns
  // it into a subsystem-error event. A backend without a completion queue never calls it.
  void set_overflow_hook(void (*hook)(void* context, std::uint64_t total) noexcept, void* context) noexcept {
    overflow_hook_ = hook;
    overflow_context_ = context;
  }

 protected:
  void note_cq_overflow(std::uint64_t total) noexcept {
    if (overflow_hook_ != nullptr) overflow_hook_(overflow_context_, total);
  }

 private:
  void (*overflow_hook_)(void* context, std::uint64_t total) noexcept = nullptr;
  void* overflow_context_ = nullptr;
};

}  // namespace aem::detail
