// io_sources.cpp — the socket event sources of the event table: multishot accept (with a
// back-off when the process runs out of fds), multishot receive into the core's provided-buffer
// ring (paused and re-armed when buffers run out), and polls for hang-up and readiness.
#include "runtime/core.hpp"
#include "runtime/event_table.hpp"
#include "runtime/runtime_impl.hpp"

#include <aem/net/events.hpp>

#include <algorithm>
#include <cerrno>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace aem::detail {
namespace {

constexpr Duration kFirstBackoff = std::chrono::milliseconds(1);
constexpr Duration kMaxBackoff = std::chrono::milliseconds(128);
constexpr std::uint16_t kBufferGroup = 0;

// Receives up to this size are copied into a right-sized block and the ring buffer is reused
// at once; larger ones hand the ring buffer itself to the handler.
std::size_t copy_limit(std::size_t buffer_size) noexcept { return buffer_size / 4; }

// fd_exhausted: the errors after which accepting again at once would only spin.
bool fd_exhausted(int error) noexcept { return error == EMFILE || error == ENFILE || error == ENOMEM || error == ENOBUFS; }

// transient: accept(2) lists these as errors of the one connection, not of the listener.
bool transient_accept_error(int error) noexcept {
  switch (error) {
    case ECONNABORTED: case EINTR: case EAGAIN: case EPROTO: case EPERM: case ENETDOWN: case ENOPROTOOPT:
    case EHOSTDOWN: case ENONET: case EHOSTUNREACH: case ENETUNREACH: case ETIMEDOUT:
      return true;
    default:
      return false;
  }
}

int socket_error(int fd) noexcept {
  int error = 0;
  socklen_t length = sizeof error;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) return errno;
  return error;
}

}  // namespace

Result<void> EventTable::ensure_buffer_ring() noexcept {
  if (buffer_ring_) return {};
  const Config& config = core_.runtime().config();
  auto ring = BufferRing::create(kBufferGroup, config.recv_buffers, config.recv_buffer_size, core_.arena());
  if (!ring) return ring.error();
  if (const int rc = core_.backend().register_buffer_ring(**ring); rc < 0) return errno_code(-rc);
  buffer_ring_ = std::move(*ring);
  buffer_ring_registered_ = true;
  return {};
}

Result<EventId> EventTable::arm_source(Registration* r, const HandlerOps* ops, const SourceSpec& spec) noexcept {
  r->ops = ops;  // from here on retire() destroys the handler
  r->kind = spec.kind;
  r->exec = spec.exec;
  r->fd = spec.fd;
  r->events = spec.events;
  r->timer.fire = &on_backoff_end;
  auto refuse = [&](std::error_code error) -> Result<EventId> {
    retire(r);
    return error;
  };
  if (spec.fd < 0 || spec.kind == SourceKind::timer ||
      (spec.exec != Executor::fresh_capsule && spec.exec != Executor::keepalive)) {
    return refuse(make_error_code(errc::invalid_argument));
  }
  if (spec.kind == SourceKind::data) {
    if (Result<void> ring = ensure_buffer_ring(); !ring) return refuse(ring.error());
  }
  submit_source(r);
  return id_of(r);
}

void EventTable::submit_source(Registration* r) noexcept {
  IoRequest request;
  request.fd = r->fd;
  switch (r->kind) {
    case SourceKind::accept:
      request.opcode = IoOpcode::accept_multishot;
      request.flags = SOCK_NONBLOCK | SOCK_CLOEXEC;
      break;
    case SourceKind::data:
      request.opcode = IoOpcode::recv_multishot;
      request.buffer_group = kBufferGroup;
      break;
    case SourceKind::hangup:
      request.opcode = IoOpcode::poll;
      request.flags = POLLRDHUP;  // POLLHUP and POLLERR are always reported
      break;
    case SourceKind::state:
      request.opcode = IoOpcode::poll_multishot;
      request.flags = r->events;
      break;
    case SourceKind::timer:
      return;
  }
  r->op_in_flight = true;
  core_.backend().submit(request, &r->op.completion, nullptr);
}

void EventTable::stop_source(Registration* r) noexcept {
  if (r->op_in_flight) core_.backend().cancel(&r->op.completion);
  r->backing_off = false;
  // A registration waiting for buffers leaves that list lazily (rearm_starved skips it).
}

void EventTable::on_source_complete(Completion* completion, int result, std::uint32_t flags) noexcept {
  auto* op = reinterpret_cast<SourceOp*>(completion);  // completion is SourceOp's first member
  Registration* r = op->owner;
  EventTable& table = *Core::current_core()->events();  // completions arrive on their own core
  if ((flags & kCompletionMore) == 0) r->op_in_flight = false;
  table.source_completed(r, result, flags);
  table.maybe_retire(r);
}

void EventTable::source_completed(Registration* r, int result, std::uint32_t flags) noexcept {
  const bool more = (flags & kCompletionMore) != 0;
  switch (r->kind) {
    case SourceKind::accept: accept_completed(r, result, more); break;
    case SourceKind::data: data_completed(r, result, flags); break;
    case SourceKind::hangup:
    case SourceKind::state: poll_completed(r, result, more); break;
    case SourceKind::timer: break;
  }
}

void EventTable::accept_completed(Registration* r, int result, bool more) noexcept {
  if (result >= 0) {
    if (r->cancelled) {
      ::close(result);
    } else {
      r->period = Duration::zero();  // accepting works again: the next back-off starts small
      Payload payload;
      payload.value = result;
      activate(r, payload);
    }
  } else if (r->cancelled || r->ended) {
    return;  // the cancellation's own completion
  } else if (fd_exhausted(-result)) {
    // Out of fds: accepting again now would fail again at once. Pause (nginx-style), tell the
    // handler, and resume after a back-off that grows while the shortage lasts.
    if (!r->backing_off) {
      r->backing_off = true;
      ++counters_.accept_backoffs;
      r->period = std::min(kMaxBackoff, r->period == Duration::zero() ? kFirstBackoff : r->period * 2);
      Payload payload;
      payload.error = -result;
      activate(r, payload);
    }
    if (more) core_.backend().cancel(&r->op.completion);
  } else if (!transient_accept_error(-result)) {
    r->ended = true;  // the listener is unusable (EBADF, EINVAL, ENOTSOCK, ...)
    Payload payload;
    payload.error = -result;
    activate(r, payload);
    if (more) core_.backend().cancel(&r->op.completion);
    return;
  }
  if (more || r->op_in_flight || r->cancelled || r->ended) return;
  if (r->backing_off) {
    if (!r->timer.node.armed()) core_.wheel().arm(r->timer.node, Clock::now() + r->period);
  } else {
    submit_source(r);  // the kernel ended the multishot (it may): start it again
  }
}

void EventTable::on_backoff_end(CoreTimer* timer) noexcept {
  auto* r = static_cast<Registration*>(timer->owner);
  EventTable& table = *Core::current_core()->events();
  r->backing_off = false;
  if (!r->cancelled && !r->ended && !r->op_in_flight) table.submit_source(r);
  table.maybe_retire(r);
}

void EventTable::data_completed(Registration* r, int result, std::uint32_t flags) noexcept {
  const bool more = (flags & kCompletionMore) != 0;
  if (result > 0 && (flags & kCompletionBuffer) != 0) {
    const auto id = static_cast<std::uint16_t>(flags >> kCompletionBufferShift);
    const auto used = static_cast<std::size_t>(result);
    if (r->cancelled) {
      buffer_ring_->recycle(id);
    } else {
      Payload payload;
      payload.data = used <= copy_limit(buffer_ring_->buffer_size()) ? buffer_ring_->take_copy(id, used)
                                                                      : buffer_ring_->hand_over(id, used);
      activate(r, payload);
    }
  } else if (result == -ENOBUFS && !r->cancelled) {
    // The ring ran dry: the bytes wait in the socket. Re-arm once buffers are back.
    ++counters_.receive_starvations;
    if (!r->on_rearm_list) {
      r->on_rearm_list = true;
      r->next_rearm = rearm_head_;
      rearm_head_ = r;
    }
    return;
  } else if (result <= 0) {
    // End of stream (0), or an error that ends the connection (ECONNRESET, ...): the source is
    // over; on_close tells the application why.
    if (!r->cancelled) r->ended = true;
    if (more) core_.backend().cancel(&r->op.completion);
    return;
  }
  if (!more && !r->op_in_flight && !r->cancelled && !r->ended) submit_source(r);
}

void EventTable::rearm_starved() noexcept {
  // Buffers come back as handlers drop their EventData (into the arena) and as the ring is
  // refilled; re-arm only when the ring has something, else the receive fails again at once.
  if (buffer_ring_ && buffer_ring_->missing() > 0) buffer_ring_->refill();
  if (buffer_ring_ && buffer_ring_->missing() == buffer_ring_->entries()) return;
  Registration* r = rearm_head_;
  rearm_head_ = nullptr;
  while (r != nullptr) {
    Registration* next = r->next_rearm;
    r->on_rearm_list = false;
    if (!r->cancelled && !r->ended && !r->op_in_flight) submit_source(r);
    maybe_retire(r);
    r = next;
  }
}

void EventTable::poll_completed(Registration* r, int result, bool more) noexcept {
  if (r->cancelled || r->ended) return;
  Payload payload;
  if (result < 0) {
    payload.error = -result;
    r->ended = true;
  } else {
    payload.value = result;
    if ((result & POLLERR) != 0) payload.error = socket_error(r->fd);
    // A hang-up registration fires once; a state registration ends with the socket.
    if (r->kind == SourceKind::hangup || (result & (POLLHUP | POLLERR)) != 0) r->ended = true;
  }
  activate(r, payload);
  if (r->ended) {
    if (more) core_.backend().cancel(&r->op.completion);
  } else if (!more && !r->op_in_flight) {
    submit_source(r);  // the kernel may end a multishot poll (e.g. CQ overflow): start it again
  }
}

Result<EventId> source_arm(const RegistrationSlot& slot, const HandlerOps* ops, const SourceSpec& spec) noexcept {
  return Core::current_core()->events()->arm_source(static_cast<Registration*>(slot.registration), ops, spec);
}

}  // namespace aem::detail

namespace aem::this_core {

SocketEventStats socket_event_stats() noexcept {
  SocketEventStats stats;
  detail::Core* core = detail::Core::current_core();
  if (core == nullptr) return stats;
  const detail::EventTable& table = *core->events();
  stats.accept_backoffs = table.socket_counters().accept_backoffs;
  stats.receive_starvations = table.socket_counters().receive_starvations;
  if (const detail::BufferRing* ring = table.buffer_ring()) {
    stats.receive_buffers = ring->entries();
    stats.receive_buffers_missing = ring->missing();
  }
  return stats;
}

}  // namespace aem::this_core
