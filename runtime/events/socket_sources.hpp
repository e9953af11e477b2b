// socket_sources.hpp — the socket sources of a core's event table (socket_sources.cpp): the
// Source records and their free list, the fd index through which the registrations of one fd
// and kind share a source, fan-out of each completion to the registrations attached to it,
// pausing and resuming a source for a throttled registration, the accept back-off, and the
// provided-buffer ring of the receives (with the receives waiting for buffers).
//
// The table (event_table.hpp) owns the SocketSources and calls attach/detach/sweep for its
// slots; the dispatcher (dispatcher.hpp) calls hold/release when a registration's queue
// reaches or leaves its bound. Completions are handed to the dispatcher's activate.
#pragma once

#include "io/backend.hpp"
#include "io/buffer_ring.hpp"
#include "runtime/sched/capsule_control.hpp"

#include <aem/detail/registration.hpp>
#include <aem/net/events.hpp>
#include <aem/result.hpp>
#include <aem/time.hpp>

#include <cstdint>
#include <memory>
#include <vector>

namespace aem::detail {

class Core;
class Dispatcher;
class EventTable;
struct Registration;
struct Source;

// is_socket_source tells whether registrations of `kind` are activated by a socket Source (an
// operation on an fd): accept, data, hang-up and state. Their events wait in the kernel (or the
// socket) while the source is paused; the other kinds (timers, triggered events) cannot wait.
constexpr bool is_socket_source(SourceType kind) noexcept {
  return kind == SourceType::accept || kind == SourceType::data || kind == SourceType::close ||
         kind == SourceType::state;
}

// SourceOp is the completion record of a source's in-flight operation.
struct SourceOp {
  Completion completion;
  Source* owner = nullptr;
};

// Source is one socket event source of a core: one operation (multishot accept, receive, or
// poll) whose completions fan out to every registration attached to it.
struct Source {
  SourceOp op;
  CoreTimer backoff;  // accept: the end of an fd-exhaustion back-off
  Duration period{};  // accept: the current back-off
  Registration* first = nullptr;  // attached registrations, linked by next_in_source
  Source* next_on_fd = nullptr;
  Source* next_rearm = nullptr;
  Source* next_free = nullptr;
  int fd = -1;
  std::uint32_t events = 0;
  std::uint32_t attached = 0;   // registrations attached (detached ones not counted)
  std::uint32_t throttled = 0;  // of which at their queue bound
  SourceType kind = SourceType::accept;
  bool in_use = false;
  bool op_in_flight = false;
  bool backing_off = false;    // accept: waiting for fds to free up
  bool on_rearm_list = false;  // data: waiting for receive buffers
  bool ended = false;          // will not activate again
  bool indexed = false;        // findable by fd for sharing
  bool pausing = false;        // a cancel for throttling is on its way
  bool dispatching = false;    // its completion is being handled: detached ones stay linked
  bool needs_sweep = false;
  bool output_held = false;    // data: the fd's send queue is over its bound (one of `throttled`)
};

// SocketCounters are a core's socket-source events worth telling apart.
struct SocketCounters {
  std::uint64_t accept_backoffs = 0;      // EMFILE/ENFILE/ENOMEM pauses of an accept
  std::uint64_t receive_starvations = 0;  // receives paused for want of buffers
};

class SocketSources {
 public:
  SocketSources(EventTable& table, Dispatcher& dispatcher, Core& core) noexcept
      : table_(table), dispatcher_(dispatcher), core_(core) {}
  ~SocketSources();
  SocketSources(const SocketSources&) = delete;
  SocketSources& operator=(const SocketSources&) = delete;

  // attach is arm_source's part here: it attaches an armed socket registration (kind and ops
  // set, spec checked) to the source of its fd and kind if there is one, else to a new source
  // it starts. Errors: errc::out_of_memory, the buffer ring's. On error nothing is attached.
  Result<void> attach(Registration* registration, const SourceSpec& spec) noexcept;
  // detach takes a registration off its source (it is cancelled, or retires); sweep unlinks the
  // detached ones once the source's dispatch is over and retires what can go.
  void detach(Registration* registration) noexcept;
  void sweep(Source* source) noexcept;
  // hold / release count a registration of `source` reaching / leaving its queue bound: the
  // first one held pauses the source, the last one released resumes it.
  void hold(Source* source) noexcept {
    if (source->throttled++ == 0) pause_source(source);
  }
  void release(Source* source) noexcept {
    if (--source->throttled == 0) resume_source(source);
  }
  // hold_output / release_output: the send queue of `fd` on this core passed its bound /
  // drained to half of it (EventLayer::hold_input / release_input): every data source of `fd`
  // counts one hold more / less, once.
  void hold_output(int fd) noexcept;
  // note_accept_backoff counts an accept's pause for want of descriptors or memory and raises
  // it as a Subsystem::accept error (the accept sources' own back-off, and a blocking accept's).
  void note_accept_backoff(int error) noexcept;
  void release_output(int fd) noexcept;
  // end_input ends the data sources of `fd` (EventLayer::end_input).
  void end_input(int fd) noexcept;
  // has_starved / rearm_starved: receives waiting for buffers (the table's run_deferred).
  bool has_starved() const noexcept { return rearm_head_ != nullptr; }
  void rearm_starved() noexcept;

  const SocketCounters& counters() const noexcept { return counters_; }
  // socket_event_stats: the counters of this_core::socket_event_stats.
  SocketEventStats socket_event_stats() const noexcept;
  const BufferRing* buffer_ring() const noexcept { return buffer_ring_.get(); }

 private:
  static void on_backoff_end(CoreTimer* timer) noexcept;
  static void on_source_complete(Completion* completion, int result, std::uint32_t flags) noexcept;
  Source* find_source(int fd, SourceType kind, std::uint32_t events) noexcept;
  Source* new_source(const SourceSpec& spec) noexcept;
  void index_source(Source* source) noexcept;
  void unindex_source(Source* source) noexcept;
  void maybe_free_source(Source* source) noexcept;
  void fan_out(Source* source, Payload& payload) noexcept;
  void end_source(Source* source) noexcept;
  void pause_source(Source* source) noexcept;
  void resume_source(Source* source) noexcept;
  void rearm_if_wanted(Source* source, bool more) noexcept;
  void submit_source(Source* source) noexcept;
  void stop_source(Source* source) noexcept;
  void source_completed(Source* source, int result, std::uint32_t flags) noexcept;
  void accept_completed(Source* source, int result, bool more) noexcept;
  void data_completed(Source* source, int result, std::uint32_t flags) noexcept;
  void poll_completed(Source* source, int result, bool more) noexcept;
  Result<void> ensure_buffer_ring() noexcept;

  EventTable& table_;
  Dispatcher& dispatcher_;  // activate: the hot path of every completion
  Core& core_;
  std::vector<std::unique_ptr<Source[]>> source_chunks_;
  Source* free_sources_ = nullptr;
  Source* rearm_head_ = nullptr;
  std::vector<Source*> by_fd_;  // sources findable for sharing, by fd
  std::unique_ptr<BufferRing> buffer_ring_;
  bool buffer_ring_registered_ = false;
  SocketCounters counters_;
};

}  // namespace aem::detail
