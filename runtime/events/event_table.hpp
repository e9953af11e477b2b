// event_table.hpp — a core's registrations: slots addressed by EventId (generation-tagged),
// each holding a handler, its control state and the activations that have not started yet,
// and the sources that activate them: timers (in the slot), triggered events (in the slot) and
// socket sources (a Source each, shared by the registrations of one fd and kind: fan-out).
// Activations run their handler in a fresh capsule, the registration's keepalive capsule, or
// inline on the dispatcher (aem::Executor).
//
// Three parts, one concept each:
//   EventTable (this header; event_table.cpp: slots, timers, cancel, retire; event_control.cpp:
//     aem::ctl, trigger): the slots, the control operations, and the scheduler's EventLayer.
//     It owns the other two and is the object the core holds (event_table() below).
//   Dispatcher (dispatcher.hpp; dispatcher.cpp: activation, queue bound, throttling,
//     executors, bursts, boost; group.cpp: Policy counts): from activation to handler.
//   SocketSources (socket_sources.hpp, socket_sources.cpp): the socket sources, their fd
//     index and fan-out, pause and resume, the accept back-off and the buffer ring.
// The sources of the other kinds (sources/: timer, topic, signal, error_event) arm slots and
// activate them through the table.
#pragma once

#include "runtime/sched/capsule_control.hpp"
#include "runtime/sched/core.hpp"
#include "runtime/sched/event_layer.hpp"
#include "runtime/events/dispatcher.hpp"
#include "runtime/events/payload_queue.hpp"
#include "runtime/events/socket_sources.hpp"

#include <aem/detail/invoke.hpp>
#include <aem/detail/registration.hpp>
#include <aem/event.hpp>
#include <aem/net/events.hpp>
#include <aem/event_id.hpp>
#include <aem/executor.hpp>
#include <aem/result.hpp>
#include <aem/time.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace aem::detail {

class Core;
struct GroupState;
struct Registration;
struct Source;
struct SignalPort;  // sources/signal.cpp
struct ErrorPort;   // sources/error_event.cpp

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
// armed timer node needs. What every lookup and activation reads comes first, in the slot's
// first 128 bytes; what only timers, socket fan-out, the dump or rare paths use follows.
// 288 bytes on x86-64: the dump's `site` is paid for by packing the states into bits.
struct Registration {
  // ---- hot: lookup, activation, delivery ----
  const HandlerOps* ops = nullptr;
  void* handler = nullptr;  // `inline_storage`, or heap memory
  RegistrationExtras* extras = nullptr;
  Source* source = nullptr;     // socket registrations: the source, until detached
  GroupState* group = nullptr;  // its event group; nullptr: the default group
  std::uint32_t generation = 1;
  std::uint32_t index = 0;
  std::uint32_t running = 0;        // activations whose capsule (or inline call) has not finished
  std::uint32_t handler_users = 0;  // of which inside the current handler
  std::uint32_t launched = 0;       // fresh capsules launched with an activation, not started yet
  std::uint32_t queue_bound = kDefaultQueueBound;
  Priority priority = Priority::normal;
  Priority pending_top = Priority::idle;  // highest priority queued (valid while the queue is not empty)
  SourceType kind = SourceType::timer;
  Executor exec = Executor::fresh_capsule;
  // The states, one bit each: reserve() clears most of them with one store.
  bool in_use : 1 = false;
  bool cancelled : 1 = false;
  bool heap_handler : 1 = false;
  bool on_pending_list : 1 = false;
  bool worker_active : 1 = false;  // keepalive: its capsule is running
  bool disabled : 1 = false;
  bool throttling : 1 = false;  // its queue reached the bound: it holds its source paused
  bool detached : 1 = false;    // left its source; unlinked at the end of the source's dispatch
  bool policed : 1 = false;     // counted by a Policy: retire and each activation give counts back (group.cpp)
  PayloadQueue queue;           // activations not started yet
  std::uint64_t activated = 0;
  std::uint64_t delivered = 0;
  Registration* next_pending = nullptr;
  // ---- the rest ----
  Duration period{};  // timers: zero for one-shot
  CoreTimer timer;    // timers: the expiry
  Registration* next_in_source = nullptr;
  CapsuleControl* worker = nullptr;  // keepalive: its capsule while worker_active
  Registration* next_free = nullptr;
  const SiteRecord* site = nullptr;  // where it was made (RegistrationOptions::site), for the dump
  std::uint64_t filtered = 0;
  std::uint64_t lost = 0;
  std::uint32_t lost_pending = 0;  // dropped, not yet reported
  std::uint32_t blocked = 0;       // inline: suspensions refused
  static constexpr std::size_t kInlineBytes = 48;
  alignas(std::max_align_t) unsigned char inline_storage[kInlineBytes];
};

class EventTable final : public EventLayer {
 public:
  static constexpr std::uint32_t kMaxSlots = 1u << 24;

  EventTable(Core& core, std::uint8_t runtime_tag) noexcept;
  ~EventTable() override;
  EventTable(const EventTable&) = delete;
  EventTable& operator=(const EventTable&) = delete;

  // The other two parts, owned here.
  Dispatcher& dispatcher() noexcept { return dispatcher_; }
  const Dispatcher& dispatcher() const noexcept { return dispatcher_; }
  SocketSources& sources() noexcept { return sources_; }
  const SocketSources& sources() const noexcept { return sources_; }

  // reserve takes a free slot with room for a handler of `size`/`align`, configured by
  // `options` (whose callbacks it takes). Errors: errc::resource_limit, errc::out_of_memory.
  Result<Registration*> reserve(std::size_t size, std::size_t align, RegistrationOptions& options) noexcept;
  // unreserve gives back a slot whose handler was never constructed.
  void unreserve(Registration* registration) noexcept;
  // arm_timer starts a reserved timer registration, first after `delay` (from the wheel's next
  // reading of the clock: TimerWheel::arm_after), and returns its id.
  EventId arm_timer(Registration* registration, const HandlerOps* ops, Duration delay, Duration period) noexcept;
  // arm_user makes a reserved registration a triggered event and returns its id.
  EventId arm_user(Registration* registration, const HandlerOps* ops) noexcept;
  // arm_source starts a reserved socket registration, attaching it to the source of its fd and
  // kind if there is one (SocketSources::attach). On error the handler is destroyed and the
  // slot freed.
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
  // with a published event (sources/topic.cpp). Errors of deliver_topic: errc::stale_event_id.
  EventId arm_topic(Registration* registration, const HandlerOps* ops) noexcept;
  Result<void> deliver_topic(EventId id, Payload& payload) noexcept;
  // arm_kind makes a reserved registration one of `kind` (signal, subsystem_error), activated
  // by activate_kind; activate_kind refuses an id of another kind (errc::invalid_argument).
  // Both in sources/signal.cpp.
  EventId arm_kind(Registration* registration, const HandlerOps* ops, SourceType kind) noexcept;
  Result<void> activate_kind(EventId id, SourceType kind, Payload& payload) noexcept;
  // The core's signal and subsystem-error readers (sources/signal.cpp, sources/error_event.cpp),
  // made by the first on_signal / on_error that needs them and freed with the table. Other cores
  // read them.
  std::atomic<SignalPort*>& signal_port() noexcept { return signal_port_; }
  std::atomic<ErrorPort*>& error_port() noexcept { return error_port_; }

  // cancel_all stops every registration (shutdown).
  void cancel_all() noexcept override;
  // has_deferred / run_deferred: activations that wait for a capsule or for the dispatcher
  // (inline handlers), and receives waiting for buffers. The loop runs them every turn while
  // there are any. run_deferred runs on the dispatcher (not in a capsule).
  bool has_deferred() const noexcept override { return dispatcher_.has_deferred() || sources_.has_starved(); }
  // bursts_can_go: see Dispatcher::bursts_can_go.
  bool bursts_can_go() const noexcept override { return dispatcher_.bursts_can_go(); }
  void run_deferred() noexcept override {
    dispatcher_.run_deferred();
    if (sources_.has_starved()) sources_.rearm_starved();
  }
  // The rest of the scheduler's EventLayer interface (runtime_events.cpp).
  void release_task(TaskState* task) noexcept override;
  void raise_error(Subsystem subsystem, int error, std::uint64_t count) noexcept override;
  ArenaConfig arena_config(const ArenaConfig& config) override;
  void add_metrics(CoreMetrics& metrics) const noexcept override;
  RegistrationSummary summary() const noexcept override;
  // note_inline_block / in_inline_handler: the dispatcher's (Dispatcher::note_inline_block).
  bool note_inline_block() noexcept override { return dispatcher_.note_inline_block(); }
  void hold_input(int fd) noexcept override { sources_.hold_output(fd); }
  void note_accept_backoff(int error) noexcept override { sources_.note_accept_backoff(error); }
  void release_input(int fd) noexcept override { sources_.release_output(fd); }
  void end_input(int fd) noexcept override { sources_.end_input(fd); }
  bool in_inline_handler() const noexcept override { return dispatcher_.in_inline_handler(); }
  // cancel_group cancels every registration of `group` on this core (EventGroup::cancel) and
  // returns how many (event_table.cpp).
  std::size_t cancel_group(const GroupState* group) noexcept;
  std::size_t size() const noexcept { return in_use_; }
  this_core::EventStats event_stats() const noexcept;

  // ---- for the dispatcher and the socket sources -------------------------------------------
  EventId id_of(const Registration* registration) const noexcept {
    return EventId(tag_, core_index_, registration->generation, registration->index);
  }
  // maybe_retire frees the slot once nothing can touch it any more: no activation runs or
  // waits, its source's dispatch is not walking it, and it is over or cancelled. Inline: every
  // activation ends here, and mostly finds the slot still wanted.
  void maybe_retire(Registration* r) noexcept {
    if (!r->in_use || r->running != 0 || r->on_pending_list || !r->queue.empty()) return;
    if (r->source != nullptr && r->source->dispatching) return;  // sweep() looks again
    if (r->cancelled || over(r)) retire(r);
  }
  // discard_queue drops the activations a registration has queued, releasing their payloads.
  void discard_queue(Registration* registration) noexcept;
  // for_each_in_use calls `f(const Registration&)` for every slot in use.
  template <typename F>
  void for_each_in_use(F&& f) const {
    for (Registration* chunk : chunks_) {
      for (std::uint32_t i = 0; i < kChunkSize; ++i) {
        if (chunk[i].in_use) f(static_cast<const Registration&>(chunk[i]));
      }
    }
  }

 private:
  // Slots (event_table.cpp).
  static void on_timer(CoreTimer* timer) noexcept;
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
    if (r->kind == SourceType::timer) return r->period == Duration::zero() && !r->timer.node.armed();
    if (is_socket_source(r->kind)) return r->source == nullptr || r->source->ended;
    return false;  // triggered: user events, topics, signals, subsystem errors
  }
  static constexpr std::uint32_t kChunkShift = 12;
  static constexpr std::uint32_t kChunkSize = 1u << kChunkShift;
  bool grow() noexcept;
  void cancel_registration(Registration* registration) noexcept;
  void retire(Registration* registration) noexcept;
  void destroy_handlers(Registration* registration) noexcept;
  RegistrationExtras* extras(Registration* registration) noexcept;

  Core& core_;
  std::uint8_t tag_;
  std::uint32_t core_index_;
  std::vector<Registration*> chunks_;
  Registration* free_ = nullptr;
  std::size_t in_use_ = 0;
  Dispatcher dispatcher_;
  SocketSources sources_;
  std::atomic<SignalPort*> signal_port_{nullptr};
  std::atomic<ErrorPort*> error_port_{nullptr};
};

// free_signal_port / free_error_port release a core's reader state (the table's destructor).
void free_signal_port(SignalPort* port) noexcept;
void free_error_port(ErrorPort* port) noexcept;

// release_payload gives up what an activation's payload owns beyond its data: a socket
// accepted for a handler that never took it (it threw, or the activation was dropped).
// Inline: every delivery asks, and only an accept's payload has anything to give up.
void close_accepted(Payload& payload) noexcept;
inline void release_payload(const Registration* registration, Payload& payload) noexcept {
  if (registration->kind == SourceType::accept && payload.value >= 0) [[unlikely]] close_accepted(payload);
}


// source_name names a kind of source for messages.
const char* source_name(SourceType kind) noexcept;

// EventName is how messages name a registration: its kind and its id in readable form,
// "timer 0/5/1 (core/slot/generation)" (the raw 64-bit id says nothing to a reader).
struct EventName {
  char text[64];
};
EventName event_name(SourceType kind, EventId id) noexcept;

// event_table is `core`'s table: the event layer the runtime installs on every core.
inline EventTable* event_table(Core* core) noexcept { return static_cast<EventTable*>(core->events()); }
inline EventTable& event_table(Core& core) noexcept { return *static_cast<EventTable*>(core.events()); }

}  // namespace aem::detail
