#include "io/epoll/epoll_ops.hpp"

#include "io/buffer_ring.hpp"

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

namespace aem::detail {
namespace {

// result turns a system call's return into the layer's -errno form.
int result(long rc) noexcept { return rc >= 0 ? static_cast<int>(rc) : -errno; }

bool is_write(IoOpcode opcode) noexcept { return opcode == IoOpcode::write || opcode == IoOpcode::writev; }

WaitKind kind_of(IoOpcode opcode) noexcept {
  switch (opcode) {
    case IoOpcode::write:
    case IoOpcode::writev:
    case IoOpcode::send:
    case IoOpcode::sendmsg:
    case IoOpcode::connect: return WaitKind::writer;
    case IoOpcode::poll:
    case IoOpcode::poll_multishot: return WaitKind::poller;
    default: return WaitKind::reader;
  }
}

// ready polls `fd` for `events` without waiting. Returns 1 when ready (errors and hang-ups
// count: the call will report them), 0 when not, -errno on failure.
int ready(int fd, short events) noexcept {
  pollfd p{fd, events, 0};
  int rc;
  do rc = ::poll(&p, 1, 0);
  while (rc < 0 && errno == EINTR);
  if (rc < 0) return -errno;
  if ((p.revents & POLLNVAL) != 0) return -EBADF;
  return (p.revents & (events | POLLERR | POLLHUP)) != 0 ? 1 : 0;
}

// transfer is read/write/readv/writev through preadv2/pwritev2 with `rwf` flags, at the
// request's offset (-1: the file position). `limit` caps the bytes, for writes that must not
// block on a blocking fd.
int transfer(EpollOp& op, int rwf, std::size_t limit) noexcept {
  const IoRequest& r = op.request;
  iovec single{r.buffer, std::min(r.length, limit)};
  const iovec* iov = &single;
  int count = 1;
  iovec clipped[8];
  if (r.opcode == IoOpcode::readv || r.opcode == IoOpcode::writev) {
    iov = static_cast<const iovec*>(r.buffer);
    count = static_cast<int>(r.length);
    if (limit != SIZE_MAX) {  // a prefix of the vector worth at most `limit` bytes
      std::size_t left = limit;
      count = 0;
      for (std::size_t i = 0; i < r.length && i < std::size(clipped) && left > 0; ++i) {
        clipped[i] = iov[i];
        clipped[i].iov_len = std::min(clipped[i].iov_len, left);
        left -= clipped[i].iov_len;
        ++count;
      }
      iov = clipped;
    }
  }
  for (;;) {
    const off_t offset = r.offset == kCurrentPosition ? -1 : static_cast<off_t>(r.offset);
    const long rc = is_write(r.opcode) ? ::pwritev2(r.fd, iov, count, offset, rwf) : ::preadv2(r.fd, iov, count, offset, rwf);
    if (rc >= 0) return static_cast<int>(rc);
    if (errno == EINTR) continue;
    // io_uring ignores the offset on streams (pipes, sockets); preadv2 refuses it.
    if (errno == ESPIPE && r.offset != kCurrentPosition) {
      op.request.offset = kCurrentPosition;
      continue;
    }
    return -errno;
  }
}

// socket_transfer is recv/send. MSG_WAITALL asks for everything: io_uring keeps going after a
// short transfer, and so do we, collecting the bytes in op.done.
int socket_transfer(EpollOp& op) noexcept {
  const IoRequest& r = op.request;
  auto* base = static_cast<char*>(r.buffer) + op.done;
  const std::size_t want = r.length - op.done;
  const int flags = static_cast<int>(r.flags) | MSG_DONTWAIT;
  long rc;
  do rc = r.opcode == IoOpcode::recv ? ::recv(r.fd, base, want, flags) : ::send(r.fd, base, want, flags);
  while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return kPending;
    return op.done > 0 ? static_cast<int>(op.done) : -errno;
  }
  op.done += static_cast<std::size_t>(rc);
  const bool all = (r.flags & MSG_WAITALL) != 0;
  if (all && rc > 0 && op.done < r.length) return kPending;
  return static_cast<int>(op.done);
}

int accept_one(const EpollOp& op) noexcept {
  const IoRequest& r = op.request;
  const bool multishot = r.opcode == IoOpcode::accept_multishot;
  int rc;
  do rc = ::accept4(r.fd, multishot ? nullptr : r.address, multishot ? nullptr : r.address_length, static_cast<int>(r.flags));
  while (rc < 0 && errno == EINTR);
  return result(rc);
}

// start_connect calls connect without blocking: a blocking socket is made non-blocking for
// the call only (io_uring likewise never waits inside connect).
int start_connect(EpollOp& op) noexcept {
  const IoRequest& r = op.request;
  const int flags = ::fcntl(r.fd, F_GETFL);
  if (flags < 0) return -errno;
  if ((flags & O_NONBLOCK) == 0) ::fcntl(r.fd, F_SETFL, flags | O_NONBLOCK);
  int rc;
  do rc = ::connect(r.fd, r.address, r.address_size);
  while (rc < 0 && errno == EINTR);
  const int error = rc < 0 ? errno : 0;
  if ((flags & O_NONBLOCK) == 0) ::fcntl(r.fd, F_SETFL, flags);
  if (error == EINPROGRESS) {
    op.mode = OpMode::connecting;
    return kPending;
  }
  if (error == EAGAIN) return kPending;  // a full listen queue (unix sockets): try again
  return -error;
}

int finish_connect(const EpollOp& op) noexcept {
  const int writable = ready(op.request.fd, POLLOUT);
  if (writable <= 0) return writable < 0 ? writable : kPending;
  int error = 0;
  socklen_t size = sizeof error;
  if (::getsockopt(op.request.fd, SOL_SOCKET, SO_ERROR, &error, &size) != 0) return -errno;
  return -error;
}

int poll_now(const EpollOp& op) noexcept {
  pollfd p{op.request.fd, static_cast<short>(op.request.flags), 0};
  int rc;
  do rc = ::poll(&p, 1, 0);
  while (rc < 0 && errno == EINTR);
  if (rc < 0) return -errno;
  if ((p.revents & POLLNVAL) != 0) return -EBADF;
  const int revents = p.revents & static_cast<short>(op.request.flags | POLLERR | POLLHUP);
  return revents != 0 ? revents : kPending;
}

// receive_provided receives into the next buffer of the operation's ring, as the kernel's
// multishot receive does: -ENOBUFS (which ends the operation) when the ring is empty.
int receive_provided(EpollOp& op) noexcept {
  std::uint16_t id = 0;
  if (op.ring == nullptr || !op.ring->peek(id)) return -ENOBUFS;
  long rc;
  do rc = ::recv(op.request.fd, op.ring->buffer(id), op.ring->buffer_size(), static_cast<int>(op.request.flags) | MSG_DONTWAIT);
  while (rc < 0 && errno == EINTR);
  if (rc < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? kPending : -errno;
  if (rc > 0) {
    op.ring->consume();
    op.buffer_id = id;
  }
  return static_cast<int>(rc);
}

// call makes the system call of a readiness-driven operation (not poll, not connect).
int call(EpollOp& op, bool known_ready) noexcept {
  const IoRequest& r = op.request;
  switch (r.opcode) {
    case IoOpcode::recv:
    case IoOpcode::send: return socket_transfer(op);
    case IoOpcode::recvmsg:
    case IoOpcode::sendmsg: {
      const int flags = static_cast<int>(r.flags) | MSG_DONTWAIT;
      long rc;
      do rc = r.opcode == IoOpcode::recvmsg ? ::recvmsg(r.fd, r.message, flags) : ::sendmsg(r.fd, r.message, flags);
      while (rc < 0 && errno == EINTR);
      return result(rc);
    }
    case IoOpcode::accept:
    case IoOpcode::accept_multishot: return accept_one(op);
    default:
      if (op.mode == OpMode::dont_wait) return transfer(op, RWF_NOWAIT, SIZE_MAX);
      // A write of at most PIPE_BUF bytes to a writable blocking pipe cannot block.
      return transfer(op, 0, known_ready && is_write(r.opcode) && op.mode == OpMode::readiness_first ? PIPE_BUF : SIZE_MAX);
  }
}

}  // namespace

int prepare_op(EpollOp& op) noexcept {
  const IoRequest& r = op.request;
  op.fd = r.fd;
  op.kind = kind_of(r.opcode);
  op.poll_mask = op.kind == WaitKind::poller ? r.flags : 0;
  op.mode = OpMode::dont_wait;
  if (is_transfer(r.opcode)) {
    struct stat st;
    if (::fstat(r.fd, &st) != 0) return -errno;
    if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode) || S_ISDIR(st.st_mode)) op.mode = OpMode::synchronous;
  } else if (r.opcode == IoOpcode::accept || r.opcode == IoOpcode::accept_multishot) {
    const int flags = ::fcntl(r.fd, F_GETFL);
    if (flags < 0) return -errno;
    op.mode = (flags & O_NONBLOCK) != 0 ? OpMode::nonblocking_fd : OpMode::readiness_first;
  }
  return 0;
}

int attempt(EpollOp& op) noexcept {
  switch (op.request.opcode) {
    case IoOpcode::poll:
    case IoOpcode::poll_multishot: return poll_now(op);
    case IoOpcode::connect: return op.mode == OpMode::connecting ? finish_connect(op) : start_connect(op);
    case IoOpcode::recv_multishot: return receive_provided(op);
    default: break;
  }
  if (op.mode == OpMode::synchronous) return attempt_blocking(op);
  bool known_ready = false;
  if (op.mode == OpMode::readiness_first) {
    const int now = ready(op.request.fd, op.kind == WaitKind::writer ? POLLOUT : POLLIN);
    if (now <= 0) return now < 0 ? now : kPending;
    known_ready = true;
  }
  const int rc = call(op, known_ready);
  if (rc == -EOPNOTSUPP && op.mode == OpMode::dont_wait && is_transfer(op.request.opcode)) {
    // This fd cannot do RWF_NOWAIT: rely on O_NONBLOCK, or on readiness for a blocking fd.
    const int flags = ::fcntl(op.request.fd, F_GETFL);
    if (flags < 0) return -errno;
    op.mode = (flags & O_NONBLOCK) != 0 ? OpMode::nonblocking_fd : OpMode::readiness_first;
    return attempt(op);
  }
  if (rc == -EAGAIN || rc == -EWOULDBLOCK) return kPending;
  return rc;
}

int attempt_blocking(EpollOp& op) noexcept { return transfer(op, 0, SIZE_MAX); }

int cancelled_result(const EpollOp& op) noexcept { return op.done > 0 ? static_cast<int>(op.done) : -ECANCELED; }

}  // namespace aem::detail
