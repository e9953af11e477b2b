// socket_sources.cpp — the socket event sources of the event table (SocketSources): multishot
// accept (with a back-off when the process runs out of fds), multishot receive into the core's
// provided-buffer ring (paused and re-armed when buffers run out), and polls for hang-up and
// readiness. The registrations of one fd's data, hang-up or state share one source and each get
// every event (fan-out); a source whose registration's queue is at its bound is paused (its
// multishot is cancelled, the events wait in the kernel) until the queue drains.
#include "runtime/sched/core.hpp"
#include "base/log.hpp"
#include "runtime/events/sources/error_event.hpp"
#include "runtime/events/event_table.hpp"
#include "runtime/events/socket_sources.hpp"

#include "io/accept_backoff.hpp"
#include "runtime/sched/runtime_impl.hpp"

#include <aem/net/events.hpp>

#include <algorithm>
#include <cerrno>
#include <new>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace aem::detail {
namespace {

constexpr std::uint16_t kBufferGroup = 0;
constexpr std::size_t kSourceChunk = 256;

// Receives up to this size are copied into a right-sized block and the ring buffer is reused
// at once; larger ones hand the ring buffer itself to the handler.
std::size_t copy_limit(std::size_t buffer_size) noexcept { return buffer_size / 4; }

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

SocketSources::~SocketSources() {
  if (buffer_ring_ && buffer_ring_registered_) core_.backend().unregister_buffer_ring(*buffer_ring_);
}

Result<void> SocketSources::ensure_buffer_ring() noexcept {
  if (buffer_ring_) return {};
  const Config& config = core_.runtime().config();
  auto ring = BufferRing::create(kBufferGroup, config.recv_buffers, config.recv_buffer_size, core_.arena());
  if (!ring) return ring.error();
  if (const int rc = core_.backend().register_buffer_ring(**ring); rc < 0) return errno_code(-rc);
  buffer_ring_ = std::move(*ring);
  buffer_ring_registered_ = true;
  return {};
}

// ---- sources: records, the fd index, attaching and detaching ---------------------------

Source* SocketSources::new_source(const SourceSpec& spec) noexcept {
  if (free_sources_ == nullptr) {
    auto* chunk = new (std::nothrow) Source[kSourceChunk];
    if (chunk == nullptr) return nullptr;
    try {
      source_chunks_.emplace_back(chunk);
    } catch (...) {
      delete[] chunk;
      return nullptr;
    }
    for (std::size_t i = kSourceChunk; i-- > 0;) {
      Source& s = chunk[i];
      s.op.owner = &s;
      s.op.completion.complete = &on_source_complete;
      s.backoff.owner = &s;
      s.backoff.fire = &on_backoff_end;
      s.next_free = free_sources_;
      free_sources_ = &s;
    }
  }
  Source* s = free_sources_;
  free_sources_ = s->next_free;
  s->next_free = nullptr;
  s->in_use = true;
  s->fd = spec.fd;
  s->kind = spec.kind;
  s->events = spec.events;
  s->first = nullptr;
  s->attached = s->throttled = 0;
  s->period = Duration::zero();
  s->op_in_flight = s->backing_off = s->on_rearm_list = s->ended = s->indexed = s->output_held = false;
  s->pausing = s->dispatching = s->needs_sweep = false;
  return s;
}

Source* SocketSources::find_source(int fd, SourceType kind, std::uint32_t events) noexcept {
  if (static_cast<std::size_t>(fd) >= by_fd_.size()) return nullptr;
  for (Source* s = by_fd_[static_cast<std::size_t>(fd)]; s != nullptr; s = s->next_on_fd) {
    if (s->kind == kind && s->events == events) return s;
  }
  return nullptr;
}

void SocketSources::note_accept_backoff(int error) noexcept {
  ++counters_.accept_backoffs;
  raise_subsystem_error(core_, Subsystem::accept, error, counters_.accept_backoffs);
}

void SocketSources::hold_output(int fd) noexcept {
  if (fd < 0 || static_cast<std::size_t>(fd) >= by_fd_.size()) return;
  for (Source* s = by_fd_[static_cast<std::size_t>(fd)]; s != nullptr;) {
    Source* next = s->next_on_fd;  // read first: pausing may end the source
    if (s->kind == SourceType::data && !s->output_held) {
      s->output_held = true;
      hold(s);
    }
    s = next;
  }
}

void SocketSources::release_output(int fd) noexcept {
  if (fd < 0 || static_cast<std::size_t>(fd) >= by_fd_.size()) return;
  for (Source* s = by_fd_[static_cast<std::size_t>(fd)]; s != nullptr;) {
    Source* next = s->next_on_fd;
    if (s->kind == SourceType::data && s->output_held) {
      s->output_held = false;
      release(s);
    }
    s = next;
  }
}

void SocketSources::end_input(int fd) noexcept {
  if (fd < 0 || static_cast<std::size_t>(fd) >= by_fd_.size()) return;
  for (Source* s = by_fd_[static_cast<std::size_t>(fd)]; s != nullptr;) {
    Source* next = s->next_on_fd;  // read first: ending unindexes the source
    if (s->kind == SourceType::data && !s->ended) {
      if (s->output_held) {
        s->output_held = false;
        --s->throttled;
      }
      end_source(s);
      if (s->op_in_flight) core_.backend().cancel(&s->op.completion);
      // As at a completion that ends the source: registrations with nothing left to deliver
      // are over now, the others when their queue is delivered.
      for (Registration* r = s->first; r != nullptr;) {
        Registration* after = r->next_in_source;
        table_.maybe_retire(r);  // may unlink r (and free s once the last goes)
        r = after;
      }
    }
    s = next;
  }
}

void SocketSources::index_source(Source* s) noexcept {
  const auto fd = static_cast<std::size_t>(s->fd);
  if (fd >= by_fd_.size()) {
    try {
      by_fd_.resize(std::max<std::size_t>(fd + 1, by_fd_.size() * 2), nullptr);
    } catch (...) {
      return;  // not findable: a later registration of this fd gets a source of its own
    }
  }
  s->next_on_fd = by_fd_[fd];
  by_fd_[fd] = s;
  s->indexed = true;
}

// unindex_source makes an ended or stopped source unfindable at once: the fd may be closed and
// reused by a new socket, whose registrations must get a source of their own.
void SocketSources::unindex_source(Source* s) noexcept {
  if (!s->indexed) return;
  s->indexed = false;
  Source** link = &by_fd_[static_cast<std::size_t>(s->fd)];
  while (*link != s) link = &(*link)->next_on_fd;
  *link = s->next_on_fd;
}

void SocketSources::maybe_free_source(Source* s) noexcept {
  if (!s->in_use || s->first != nullptr || s->op_in_flight || s->backoff.node.armed() || s->on_rearm_list ||
      s->dispatching) {
    return;
  }
  unindex_source(s);
  s->in_use = false;
  s->next_free = free_sources_;
  free_sources_ = s;
}

// detach takes a registration off its source (it is cancelled, or retires): the source stops
// when nobody is left. During the source's dispatch it stays linked (marked) and sweep()
// unlinks it afterwards, so the dispatch loop never walks a freed link.
void SocketSources::detach(Registration* r) noexcept {
  Source* s = r->source;
  if (r->detached) return;
  r->detached = true;
  if (r->throttling) {
    r->throttling = false;
    --s->throttled;
  }
  if (--s->attached == 0) stop_source(s);
  else if (s->throttled == 0) resume_source(s);  // it may have been the one holding the source
  s->needs_sweep = true;
  if (!s->dispatching) sweep(s);
}

void SocketSources::sweep(Source* s) noexcept {
  if (s->dispatching || !s->needs_sweep) return;
  s->needs_sweep = false;
  Registration** link = &s->first;
  Registration* gone = nullptr;  // unlinked first, retired after: retiring may sweep again
  while (*link != nullptr) {
    Registration* r = *link;
    if (r->detached) {
      *link = r->next_in_source;
      r->source = nullptr;
      r->detached = false;
      r->next_in_source = gone;
      gone = r;
    } else {
      link = &r->next_in_source;
    }
  }
  while (gone != nullptr) {
    Registration* r = gone;
    gone = r->next_in_source;
    r->next_in_source = nullptr;
    table_.maybe_retire(r);
  }
  maybe_free_source(s);
}

Result<void> SocketSources::attach(Registration* r, const SourceSpec& spec) noexcept {
  if (spec.kind == SourceType::data) {
    if (Result<void> ring = ensure_buffer_ring(); !ring) return ring.error();
  }
  // An accepted connection can have one owner only: accept registrations never share.
  Source* s = spec.kind != SourceType::accept ? find_source(spec.fd, spec.kind, spec.events) : nullptr;
  const bool fresh = s == nullptr;
  if (fresh) {
    s = new_source(spec);
    if (s == nullptr) return make_error_code(errc::out_of_memory);
  }
  r->source = s;
  r->detached = false;
  r->next_in_source = s->first;
  s->first = r;
  ++s->attached;
  if (fresh) {
    if (spec.kind != SourceType::accept) index_source(s);
    submit_source(s);
  }
  return {};
}

// ---- operations ----------------------------------------------------------------------------

void SocketSources::submit_source(Source* s) noexcept {
  IoRequest request;
  request.fd = s->fd;
  switch (s->kind) {
    case SourceType::accept:
      request.opcode = IoOpcode::accept_multishot;
      request.flags = SOCK_NONBLOCK | SOCK_CLOEXEC;
      break;
    case SourceType::data:
      request.opcode = IoOpcode::recv_multishot;
      request.buffer_group = kBufferGroup;
      break;
    case SourceType::close:
      request.opcode = IoOpcode::poll;
      request.flags = POLLRDHUP;  // POLLHUP and POLLERR are always reported
      break;
    case SourceType::state:
      request.opcode = IoOpcode::poll_multishot;
      request.flags = s->events;
      break;
    default:
      return;  // not a socket source (is_socket_source): attach never makes one
  }
  s->op_in_flight = true;
  s->pausing = false;
  core_.backend().submit(request, &s->op.completion, nullptr);
}

void SocketSources::stop_source(Source* s) noexcept {
  if (s->op_in_flight) core_.backend().cancel(&s->op.completion);
  if (s->backoff.node.armed()) core_.wheel().cancel(s->backoff.node);
  s->backing_off = false;
  unindex_source(s);
  // A source waiting for buffers leaves that list lazily (rearm_starved skips it).
}

// pause_source stops a source one of whose registrations is at its queue bound: the multishot
// is cancelled (completions already on their way are still delivered), the events wait in the
// kernel, and resume_source starts it again when the queue has drained.
void SocketSources::pause_source(Source* s) noexcept {
  if (s->op_in_flight && !s->pausing) {
    s->pausing = true;
    core_.backend().cancel(&s->op.completion);
  }
}

void SocketSources::resume_source(Source* s) noexcept { rearm_if_wanted(s, false); }

// rearm_if_wanted starts the source's operation again when it is over (the kernel may end a
// multishot at any time) and the source is wanted, not throttled, not waiting for buffers or fds.
void SocketSources::rearm_if_wanted(Source* s, bool more) noexcept {
  if (more || s->op_in_flight || s->ended || s->attached == 0 || s->throttled != 0 || s->backing_off ||
      s->on_rearm_list) {
    return;
  }
  submit_source(s);
}

void SocketSources::end_source(Source* s) noexcept {
  s->ended = true;
  unindex_source(s);
}

void SocketSources::on_source_complete(Completion* completion, int result, std::uint32_t flags) noexcept {
  auto* op = reinterpret_cast<SourceOp*>(completion);  // completion is SourceOp's first member
  Source* s = op->owner;
  SocketSources& sources = event_table(Core::current_core())->sources();  // completions arrive on their own core
  if ((flags & kCompletionMore) == 0) s->op_in_flight = false;
  s->dispatching = true;
  sources.source_completed(s, result, flags);
  s->dispatching = false;
  sources.sweep(s);
  if (s->ended) {
    // Registrations whose activations are all delivered are over now.
    for (Registration* r = s->first; r != nullptr;) {
      Registration* next = r->next_in_source;
      sources.table_.maybe_retire(r);  // may unlink r (and free s once the last goes)
      r = next;
    }
  }
  sources.maybe_free_source(s);
}

// fan_out hands one activation to every registration of the source. With one registration (the
// common case) the payload moves; with several, the bytes are shared by reference count.
void SocketSources::fan_out(Source* s, Payload& payload) noexcept {
  Registration* first = s->first;
  if (first != nullptr && first->next_in_source == nullptr) {
    if (!first->detached) dispatcher_.activate(first, payload);
    else release_payload(first, payload);
    return;
  }
  if (payload.data) {
    try {
      Result<SharedEventData> shared = SharedEventData::share(std::move(payload.data));
      if (shared) payload.shared = std::move(*shared);
    } catch (...) {
    }
    if (!payload.shared) {
      for (Registration* r = first; r != nullptr; r = r->next_in_source) {
        if (!r->detached) dispatcher_.drop(r);
      }
      log(LogLevel::error, "out of memory sharing received bytes of fd %d; they are lost", s->fd);
      return;
    }
  }
  for (Registration* r = first; r != nullptr; r = r->next_in_source) {
    if (r->detached) continue;
    Payload copy;
    copy.shared = payload.shared;
    copy.value = payload.value;
    copy.error = payload.error;
    copy.kind = payload.kind;
    dispatcher_.activate(r, copy);
  }
}

void SocketSources::source_completed(Source* s, int result, std::uint32_t flags) noexcept {
  const bool more = (flags & kCompletionMore) != 0;
  switch (s->kind) {
    case SourceType::accept: accept_completed(s, result, more); break;
    case SourceType::data: data_completed(s, result, flags); break;
    case SourceType::close:
    case SourceType::state: poll_completed(s, result, more); break;
    default: break;  // not a socket source (is_socket_source): attach never makes one
  }
}

void SocketSources::accept_completed(Source* s, int result, bool more) noexcept {
  if (result >= 0) {
    if (s->attached == 0) {
      ::close(result);
    } else {
      if (s->period != Duration::zero()) [[unlikely]] log(LogLevel::info, "listener fd %d accepts again", s->fd);
      s->period = Duration::zero();  // accepting works again: the next back-off starts small
      Payload payload;
      payload.value = result;
      fan_out(s, payload);
    }
  } else if (s->attached == 0 || s->ended || result == -ECANCELED) {
    // stopped, or the end of a pause: nothing to report
  } else if (fd_exhausted(-result)) {
    // Out of fds: accepting again now would fail again at once. Pause (nginx-style), tell the
    // registration, and resume after a back-off that grows while the shortage lasts.
    if (!s->backing_off) {
      s->backing_off = true;
      note_accept_backoff(-result);
      if (s->period == Duration::zero()) log_accept_shortage(s->fd, -result);  // once per shortage
      s->period = next_accept_backoff(s->period);
      Payload payload;
      payload.kind = PayloadKind::error;
      payload.error = -result;
      fan_out(s, payload);
    }
    if (more) core_.backend().cancel(&s->op.completion);
  } else if (!transient_accept_error(-result)) {
    end_source(s);  // the listener is unusable (EBADF, EINVAL, ENOTSOCK, ...)
    Payload payload;
    payload.kind = PayloadKind::error;
    payload.error = -result;
    fan_out(s, payload);
    if (more) core_.backend().cancel(&s->op.completion);
    return;
  }
  if (more || s->op_in_flight) return;
  if (s->backing_off && s->attached != 0) {
    if (!s->backoff.node.armed()) core_.wheel().arm(s->backoff.node, Clock::now() + s->period);
    return;
  }
  rearm_if_wanted(s, more);  // the kernel ended the multishot (it may), or a pause is over
}

void SocketSources::on_backoff_end(CoreTimer* timer) noexcept {
  auto* s = static_cast<Source*>(timer->owner);
  SocketSources& sources = event_table(Core::current_core())->sources();
  s->backing_off = false;
  sources.rearm_if_wanted(s, false);
  sources.maybe_free_source(s);
}

void SocketSources::data_completed(Source* s, int result, std::uint32_t flags) noexcept {
  const bool more = (flags & kCompletionMore) != 0;
  if (result > 0 && (flags & kCompletionBuffer) != 0) {
    const auto id = static_cast<std::uint16_t>(flags >> kCompletionBufferShift);
    const auto used = static_cast<std::size_t>(result);
    if (s->attached == 0) {
      buffer_ring_->recycle(id);
    } else {
      Payload payload;
      payload.data = used <= copy_limit(buffer_ring_->buffer_size()) ? buffer_ring_->take_copy(id, used)
                                                                      : buffer_ring_->hand_over(id, used);
      fan_out(s, payload);
    }
  } else if (result == -ENOBUFS && s->attached != 0) {
    // The ring ran dry: the bytes wait in the socket. Re-arm once buffers are back.
    ++counters_.receive_starvations;
    if (!s->on_rearm_list) {
      s->on_rearm_list = true;
      s->next_rearm = rearm_head_;
      rearm_head_ = s;
    }
    return;
  } else if (result == -ECANCELED) {
    // A pause for a full queue, or the source stopped: the bytes wait in the socket.
  } else if (result <= 0) {
    // End of stream (0), or an error that ends the connection (ECONNRESET, ...): the source is
    // over; on_close tells the application why.
    end_source(s);
    if (more) core_.backend().cancel(&s->op.completion);
    return;
  }
  rearm_if_wanted(s, more);
}

void SocketSources::rearm_starved() noexcept {
  // Buffers come back as handlers drop their EventData (into the arena) and as the ring is
  // refilled; re-arm only when the ring has something, else the receive fails again at once.
  if (buffer_ring_ && buffer_ring_->missing() > 0) buffer_ring_->refill();
  if (buffer_ring_ && buffer_ring_->missing() == buffer_ring_->entries()) return;
  Source* s = rearm_head_;
  rearm_head_ = nullptr;
  while (s != nullptr) {
    Source* next = s->next_rearm;
    s->on_rearm_list = false;
    rearm_if_wanted(s, false);
    maybe_free_source(s);
    s = next;
  }
}

void SocketSources::poll_completed(Source* s, int result, bool more) noexcept {
  if (s->attached == 0 || s->ended || result == -ECANCELED) {
    rearm_if_wanted(s, more);
    return;
  }
  Payload payload;
  if (result < 0) {
    payload.error = -result;
    end_source(s);
  } else {
    payload.value = result;
    if ((result & POLLERR) != 0) payload.error = socket_error(s->fd);
    // A hang-up registration fires once; a state registration ends with the socket.
    if (s->kind == SourceType::close || (result & (POLLHUP | POLLERR)) != 0) end_source(s);
  }
  fan_out(s, payload);
  if (s->ended) {
    if (more) core_.backend().cancel(&s->op.completion);
  } else {
    rearm_if_wanted(s, more);  // the kernel may end a multishot poll (e.g. CQ overflow): start it again
  }
}

SocketEventStats SocketSources::socket_event_stats() const noexcept {
  SocketEventStats stats;
  stats.accept_backoffs = counters_.accept_backoffs;
  stats.receive_starvations = counters_.receive_starvations;
  if (buffer_ring_) {
    stats.receive_buffers = buffer_ring_->entries();
    stats.receive_buffers_missing = buffer_ring_->missing();
  }
  return stats;
}

Result<EventId> arm_source(const RegistrationSlot& slot, const HandlerOps* ops, const SourceSpec& spec) noexcept {
  return event_table(Core::current_core())->arm_source(static_cast<Registration*>(slot.registration), ops, spec);
}

}  // namespace aem::detail

namespace aem::this_core {

SocketEventStats socket_event_stats() noexcept {
  SocketEventStats stats;
  detail::Core* core = detail::Core::current_core();
  if (core == nullptr) return stats;
  return detail::event_table(core)->sources().socket_event_stats();
}

}  // namespace aem::this_core
