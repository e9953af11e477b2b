// event_table.hpp — a core's registrations: slots addressed by EventId (generation-tagged),
// each holding a handler, its control state and the activations that have not started yet,
// and the sources that activate them: timers (in the slot), triggered events (in the slot) and
// socket sources (a Source each, shared by the registrations of one fd and kind: fan-out).
// Activations run their handler in a fresh capsule, the registration's keepalive capsule, or
// inline on the dispatcher (aem::Executor).
//
// Files: event_table.cpp (slots, timers, cancel, retire), event_delivery.cpp (activation,
// queue bound, throttling, executors, boost), event_control.cpp (aem::ctl, trigger),
// io_sources.cpp (socket sources).
#pragma once

#include "io/backend.hpp"
#include "io/buffer_ring.hpp"
#include "runtime/capsule_control.hpp"
#include "runtime/payload_queue.hpp"

#include <aem/detail/invoke.hpp>
#include <aem/detail/registration.hpp>
#include <aem/event.hpp>
#include <aem/event_id.hpp>
#include <aem/executor.hpp>
#include <aem/result.hpp>
#include <aem/time.hpp>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

namespace aem::detail {

class Core;
struct GroupState;
struct Registration;
struct Source;
struct SignalPort;  // signals.cpp
struct ErrorPort;   // error_events.cpp

// SourceOp is the completion record of a source's in-flight operation.
struct SourceOp {
  Completion completion;
  Source* owner = nullptr;
};

// RetiredHandler is a replaced handler that an activation still runs; destroyed when the last
// of them returns.
struct RetiredHandler {
  const HandlerOps* ops = nullptr;
  void* handler = nullptr;
  bool heap = false;
  std::uint32_t users = 0;
  RetiredHandler* next = nullptr;
};

// RegistrationExtras hold what few registrations use, so an idle connection does not pay for
// it: callbacks, the filter, the timeout and replaced handlers still running.
struct RegistrationExtras {
  std::function<void(Lost)> on_lost;
  std::function<void(std::error_code)> on_error;
  EventFilter filter;
  std::function<void()> on_timeout;
  CoreTimer timeout_timer;  // owner: the Registration
  Duration timeout{};
  TimePoint last_activity{};
  RetiredHandler* retired = nullptr;
};

// Registration is one slot. Its address is stable (slots live in fixed chunks), which the
// armed timer node needs.
struct Registration {
  CoreTimer timer;  // timers: the expiry
  const HandlerOps* ops = nullptr;
  void* handler = nullptr;  // `inline_storage`, or heap memory
  Duration period{};        // timers: zero for one-shot
  PayloadQueue queue;       // activations not started yet
  Source* source = nullptr;  // socket registrations: the source, until detached
  Registration* next_in_source = nullptr;
  RegistrationExtras* extras = nullptr;
  CapsuleControl* worker = nullptr;  // keepalive: its capsule while worker_active
  Registration* next_free = nullptr;
  Registration* next_pending = nullptr;
  GroupState* group = nullptr;  // its event group; nullptr: the default group
  std::uint64_t activated = 0;
  std::uint64_t delivered = 0;
  std::uint64_t filtered = 0;
  std::uint64_t lost = 0;
  std::uint32_t generation = 1;
  std::uint32_t index = 0;
  std::uint32_t running = 0;        // activations whose capsule (or inline call) has not finished
  std::uint32_t handler_users = 0;  // of which inside the current handler
  std::uint32_t queue_bound = kDefaultQueueBound;
  std::uint32_t lost_pending = 0;  // dropped, not yet reported
  std::uint32_t blocked = 0;       // inline: suspensions refused
  Priority priority = Priority::normal;
  Priority pending_top = Priority::idle;  // highest priority queued (valid while the queue is not empty)
  SourceKind kind = SourceKind::timer;
  Executor exec = Executor::fresh_capsule;
  bool in_use = false;
  bool cancelled = false;
  bool heap_handler = false;
  bool on_pending_list = false;
  bool worker_active = false;  // keepalive: its capsule is running
  bool disabled = false;
  bool throttling = false;  // its queue reached the bound: it holds its source paused
  bool detached = false;    // left its source; unlinked at the end of the source's dispatch
  bool policed = false;     // counted by a Policy: retire and each activation give counts back (group.cpp)
  static constexpr std::size_t kInlineBytes = 48;
  alignas(std::max_align_t) unsigned char inline_storage[kInlineBytes];
};

// RegistrationFifo is an intrusive FIFO of registrations, linked through next_pending: the
// pending list and the burst lists of an EventTable.
struct RegistrationFifo {
  Registration* head = nullptr;
  Registration* tail = nullptr;

  bool empty() const noexcept { return head == nullptr; }
  void push_back(Registration* r) noexcept {
    r->next_pending = nullptr;
    if (tail != nullptr) tail->next_pending = r;
    else head = r;
    tail = r;
  }
  Registration* pop_front() noexcept {
    Registration* r = head;
    head = r->next_pending;
    if (head == nullptr) tail = nullptr;
    return r;
  }
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
  SourceKind kind = SourceKind::accept;
  bool in_use = false;
  bool op_in_flight = false;
  bool backing_off = false;    // accept: waiting for fds to free up
  bool on_rearm_list = false;  // data: waiting for receive buffers
  bool ended = false;          // will not activate again
  bool indexed = false;        // findable by fd for sharing
  bool pausing = false;        // a cancel for throttling is on its way
  bool dispatching = false;    // its completion is being handled: detached ones stay linked
  bool needs_sweep = false;
};

// SocketCounters are a core's socket-source events worth telling apart.
struct SocketCounters {
  std::uint64_t accept_backoffs = 0;      // EMFILE/ENFILE/ENOMEM pauses of an accept
  std::uint64_t receive_starvations = 0;  // receives paused for want of buffers
};

class EventTable {
 public:
  static constexpr std::uint32_t kMaxSlots = 1u << 24;

  EventTable(Core& core, std::uint8_t runtime_tag) noexcept;
  ~EventTable();
  EventTable(const EventTable&) = delete;
  EventTable& operator=(const EventTable&) = delete;

  // reserve takes a free slot with room for a handler of `size`/`align`, configured by
  // `options` (whose callbacks it takes). Errors: errc::resource_limit, errc::out_of_memory.
  Result<Registration*> reserve(std::size_t size, std::size_t align, RegistrationOptions& options) noexcept;
  // unreserve gives back a slot whose handler was never constructed.
  void unreserve(Registration* registration) noexcept;
  // arm_timer starts a reserved timer registration and returns its id.
  EventId arm_timer(Registration* registration, const HandlerOps* ops, TimePoint first, Duration period) noexcept;
  // arm_user makes a reserved registration a triggered event and returns its id.
  EventId arm_user(Registration* registration, const HandlerOps* ops) noexcept;
  // arm_source starts a reserved socket registration, attaching it to the source of its fd and
  // kind if there is one (io_sources.cpp). On error the handler is destroyed and the slot freed.
  Result<EventId> arm_source(Registration* registration, const HandlerOps* ops, const SourceSpec& spec) noexcept;

  // The control operations (event_control.cpp), on an id of this core. Errors: as aem::ctl.
  Result<void> cancel(EventId id) noexcept;
  Result<void> enable(EventId id) noexcept;
  Result<void> disable(EventId id) noexcept;
  Result<void> set_priority(EventId id, Priority priority) noexcept;
  Result<void> set_filter(EventId id, EventFilter& filter) noexcept;
  Result<void> set_timeout(EventId id, Duration timeout, std::function<void()>& handler) noexcept;
  Result<void> replace_handler(EventId id, const Replacement& replacement) noexcept;
  Result<EventInfo> info(EventId id) const noexcept;
  Result<void> trigger(EventId id, EventData& data, std::uint8_t priority) noexcept;
  // arm_topic makes a reserved registration a topic subscription; deliver_topic activates one
  // with a published event (runtime/topics.cpp). Errors of deliver_topic: errc::stale_event_id.
  EventId arm_topic(Registration* registration, const HandlerOps* ops) noexcept;
  Result<void> deliver_topic(EventId id, Payload& payload) noexcept;
  // arm_kind makes a reserved registration one of `kind` (signal, subsystem_error), activated
  // by activate_kind; activate_kind refuses an id of another kind (errc::invalid_argument).
  // Both in signals.cpp.
  EventId arm_kind(Registration* registration, const HandlerOps* ops, SourceKind kind) noexcept;
  Result<void> activate_kind(EventId id, SourceKind kind, Payload& payload) noexcept;
  // The core's signal and subsystem-error readers (signals.cpp, error_events.cpp), made by the
  // first on_signal / on_error that needs them and freed with the table. Other cores read them.
  std::atomic<SignalPort*>& signal_port() noexcept { return signal_port_; }
  std::atomic<ErrorPort*>& error_port() noexcept { return error_port_; }

  // cancel_all stops every registration (shutdown).
  void cancel_all() noexcept;
  // has_deferred / run_deferred: activations that wait for a capsule or for the dispatcher
  // (inline handlers), and receives waiting for buffers. The loop runs them every turn while
  // there are any. run_deferred runs on the dispatcher (not in a capsule).
  bool has_deferred() const noexcept {
    return !pending_.empty() || burst_listed_ != 0 || rearm_head_ != nullptr;
  }
  // bursts_can_go: held-back burst activations wait, and the last pass started some (or a burst
  // was just held): once the launched ones have run, the loop's next turn starts more at once
  // instead of idling first. A pass that found no capsule waits for the idle retry instead.
  bool bursts_can_go() const noexcept { return burst_listed_ != 0 && burst_progress_; }
  void run_deferred() noexcept;
  // note_inline_block tells whether the dispatcher runs an inline handler now, counting one
  // refused suspension if so. Called by the blocking calls when they find no capsule.
  bool note_inline_block() noexcept;
  bool in_inline_handler() const noexcept { return inline_current_ != nullptr; }
  // inline_registration is the registration whose inline handler the dispatcher runs, or nullptr.
  Registration* inline_registration() const noexcept { return inline_current_; }
  // cancel_group cancels every registration of `group` on this core (EventGroup::cancel) and
  // returns how many (group.cpp).
  std::size_t cancel_group(const GroupState* group) noexcept;
  // pending_by_priority counts the activations queued and not started, by the priority they
  // will run at (metrics: computed when a snapshot is taken, not kept up on every queue move).
  void pending_by_priority(std::uint64_t (&counts)[kPriorityLevels]) const noexcept;
  std::size_t size() const noexcept { return in_use_; }
  const SocketCounters& socket_counters() const noexcept { return counters_; }
  this_core::EventStats event_stats() const noexcept;
  const BufferRing* buffer_ring() const noexcept { return buffer_ring_.get(); }

 private:
  struct Activation;
  // Slots (event_table.cpp).
  static void on_timer(CoreTimer* timer) noexcept;
  EventId id_of(const Registration* registration) const noexcept {
    return EventId(tag_, core_index_, registration->generation, registration->index);
  }
  Registration* slot(std::uint32_t index) const noexcept {
    const std::uint32_t chunk = index >> kChunkShift;
    if (chunk >= chunks_.size()) [[unlikely]] return nullptr;
    return &chunks_[chunk][index & (kChunkSize - 1)];
  }
  // lookup finds the registration of `id`: errc::stale_event_id unless it is in use, of this
  // generation, armed, and not over with every activation delivered. Inline: every control
  // operation and trigger starts here.
  Result<Registration*> lookup(EventId id) const noexcept {
    Registration* r = slot(id.slot());
    if (r == nullptr || !r->in_use || r->cancelled || r->generation != id.generation() || r->ops == nullptr) [[unlikely]] {
      return make_error_code(errc::stale_event_id);
    }
    if (!r->queue.empty() || !over(r)) [[likely]] return r;
    return make_error_code(errc::stale_event_id);  // over, and every activation delivered
  }
  // over tells whether a registration's source will not activate it again: a one-shot timer
  // that fired, a socket source that ended.
  bool over(const Registration* r) const noexcept {
    switch (r->kind) {
      case SourceKind::timer: return r->period == Duration::zero() && !r->timer.node.armed();
      case SourceKind::accept:
      case SourceKind::data:
      case SourceKind::hangup:
      case SourceKind::state: return r->source == nullptr || r->source->ended;
      default: return false;  // triggered: user events, topics, signals, subsystem errors
    }
  }
  static constexpr std::uint32_t kChunkShift = 12;
  static constexpr std::uint32_t kChunkSize = 1u << kChunkShift;
  bool grow() noexcept;
  void cancel_registration(Registration* registration) noexcept;
  void maybe_retire(Registration* registration) noexcept;
  void retire(Registration* registration) noexcept;
  void discard_queue(Registration* registration) noexcept;
  void destroy_handlers(Registration* registration) noexcept;
  RegistrationExtras* extras(Registration* registration) noexcept;
  // Delivery (event_delivery.cpp).
  void activate(Registration* registration, Payload& payload) noexcept;
  void post_notice(Registration* registration, Payload& payload) noexcept;
  bool admit(Registration* registration, Payload& payload) noexcept;
  bool enqueue(Registration* registration, Payload& payload) noexcept;
  Payload take_next(Registration* registration) noexcept;
  void kick(Registration* registration) noexcept;
  // start_activation: see event_delivery.cpp. hold_bursts false launches past burst_full.
  bool start_activation(Registration* registration, Payload* payload, bool hold_bursts = true) noexcept;
  void launch_past_bound(Registration* registration) noexcept;
  void run_inline(Registration* registration, Payload& payload) noexcept;
  void deliver(Registration* registration, Payload& payload) noexcept;
  void invoke_handler(Registration* registration, Payload& payload) noexcept;
  void add_pending(Registration* registration) noexcept;
  void add_burst_held(Registration* registration) noexcept;
  void retry_pending() noexcept;
  void retry_bursts() noexcept;
  void activation_done(Registration* registration) noexcept;
  void throttle(Registration* registration) noexcept;
  void unthrottle(Registration* registration) noexcept;
  void boost_worker(Registration* registration) noexcept;
  Priority priority_of(const Registration* registration, const Payload& payload) const noexcept;
  // Policy (group.cpp), for policed registrations only: policy_enter counts one more handler
  // running, or refuses (max_active reached: start_held_ is set, the activation waits);
  // policy_leave counts it finished; policy_retire gives back the registration's counts.
  bool policy_enter(Registration* registration) noexcept;
  void policy_leave(Registration* registration) noexcept;
  void policy_retire(Registration* registration) noexcept;
  static void on_timeout(CoreTimer* timer) noexcept;
  // Socket sources (io_sources.cpp).
  static void on_backoff_end(CoreTimer* timer) noexcept;
  static void on_source_complete(Completion* completion, int result, std::uint32_t flags) noexcept;
  Source* find_source(int fd, SourceKind kind, std::uint32_t events) noexcept;
  Source* new_source(const SourceSpec& spec) noexcept;
  void index_source(Source* source) noexcept;
  void unindex_source(Source* source) noexcept;
  void maybe_free_source(Source* source) noexcept;
  void detach(Registration* registration) noexcept;
  void sweep(Source* source) noexcept;
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
  void rearm_starved() noexcept;
  Result<void> ensure_buffer_ring() noexcept;

  Core& core_;
  std::uint8_t tag_;
  std::uint32_t core_index_;
  std::vector<Registration*> chunks_;
  Registration* free_ = nullptr;
  RegistrationFifo pending_;
  Registration* inline_current_ = nullptr;  // the inline handler the dispatcher runs
  std::size_t in_use_ = 0;
  std::vector<std::unique_ptr<Source[]>> source_chunks_;
  Source* free_sources_ = nullptr;
  Source* rearm_head_ = nullptr;
  std::vector<Source*> by_fd_;  // sources findable for sharing, by fd
  std::unique_ptr<BufferRing> buffer_ring_;
  bool buffer_ring_registered_ = false;
  SocketCounters counters_;
  std::uint64_t inline_blocked_ = 0;
  std::uint64_t throttles_ = 0;
  std::uint64_t lost_ = 0;
  std::atomic<SignalPort*> signal_port_{nullptr};
  std::atomic<ErrorPort*> error_port_{nullptr};
  // start_held_: the last start_activation was held back (max_active reached, or a burst
  // waiting to start): retry_pending passes over the registration and tries the others.
  // burst_held_: held back by burst_full in particular.
  bool start_held_ = false;
  bool burst_held_ = false;
  // bursts_: fresh-capsule registrations whose oldest activation waits for a
  // burst to start, one FIFO per priority of that activation (the other deferred ones are on
  // the pending list). burst_full at one level means full at every lower one, so a pass
  // (retry_bursts) goes from the most urgent level down and ends at the first one held: a
  // burst of n held registrations costs O(n) over its turns, not a scan of all n per turn.
  std::array<RegistrationFifo, kPriorityLevels> bursts_{};
  std::size_t burst_listed_ = 0;
  bool burst_progress_ = false;
  // unstarted_ counts fresh-capsule activations launched but not yet running, by priority. A
  // burst takes capsules only as fast as the core runs them (burst_full): pooled capsules come
  // back in time for the rest, instead of one new stack per queued activation. A handler that
  // blocks has started, so blocked handlers never hold the next ones back.
  std::array<std::uint32_t, kPriorityLevels> unstarted_{};
  std::uint32_t unstarted_total_ = 0;
  std::uint32_t burst_bound_;  // Config::run_budget
  // burst_full: see event_delivery.cpp. Inline: every fresh activation asks, and a burst is rare.
  bool burst_full(Priority at) const noexcept {
    return unstarted_total_ >= burst_bound_ && burst_full_at(at);
  }
  bool burst_full_at(Priority at) const noexcept;
};

// free_signal_port / free_error_port release a core's reader state (the table's destructor).
void free_signal_port(SignalPort* port) noexcept;
void free_error_port(ErrorPort* port) noexcept;

// release_payload gives up what an activation's payload owns beyond its data: a socket
// accepted for a handler that never took it (it threw, or the activation was dropped).
void release_payload(const Registration* registration, Payload& payload) noexcept;

// source_type is the public name of a kind of source (EventInfo::source, Policy).
SourceType source_type(SourceKind kind) noexcept;

// source_name names a kind of source for messages.
const char* source_name(SourceKind kind) noexcept;

}  // namespace aem::detail
