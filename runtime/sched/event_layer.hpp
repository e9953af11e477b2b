// event_layer.hpp — the narrow interface through which a core's loop reaches the layer of
// registrations above it. The scheduler knows nothing of event tables, sources, groups or
// policies: it asks this interface whether deferred activations wait, runs them, cancels every
// registration at a stop, and lets the layer settle what a finished task held. The layer above
// (runtime/events) implements it; the Runtime installs it when it makes its cores.
#pragma once

#include <aem/arena.hpp>
#include <aem/error_event.hpp>
#include <aem/metrics.hpp>
#include <aem/source_type.hpp>
#include <aem/spawn_site.hpp>

#include <cstdint>
#include <memory>

namespace aem::detail {

class Core;
struct TaskState;

// RegistrationSummary is what Runtime::dump tells of a core's registrations beyond the queued
// activations the metrics count: how many of each kind are live, and the fullest queue.
struct RegistrationSummary {
  static constexpr std::size_t kKinds = static_cast<std::size_t>(SourceType::error) + 1;
  std::size_t live[kKinds] = {};  // by SourceType
  const char* kind_names[kKinds] = {};
  std::size_t fullest_depth = 0;  // its queue's length (notices included); 0: every queue is empty
  char fullest_name[64] = {};      // its kind and id, readable ("timer 0/5/1 (core/slot/generation)")
  const SiteRecord* fullest_site = nullptr;  // where it was made; nullptr: unknown
};

// EventLayer is one core's event layer, made on the core's thread when the core starts and
// destroyed at its teardown. Every call comes from that thread.
class EventLayer {
 public:
  virtual ~EventLayer() = default;
  // has_deferred tells whether activations wait for a capsule or for the dispatcher, or
  // receives for buffers: the loop runs run_deferred every turn while there are any.
  virtual bool has_deferred() const noexcept = 0;
  // bursts_can_go tells the loop to take its next turn at once instead of idling first.
  virtual bool bursts_can_go() const noexcept = 0;
  // run_deferred starts what waits, on the dispatcher (no capsule runs).
  virtual void run_deferred() noexcept = 0;
  // cancel_all stops every registration of the core (the runtime is stopping): no timer or
  // source starts a task after it returns.
  virtual void cancel_all() noexcept = 0;
  // in_inline_handler tells whether the dispatcher runs an inline handler now (no capsule).
  virtual bool in_inline_handler() const noexcept = 0;
  // note_inline_block tells whether the dispatcher runs an inline handler now, counting one
  // refused suspension if so. Called by the blocking calls when they find no capsule.
  virtual bool note_inline_block() noexcept = 0;
  // hold_input / release_input: the output queued for descriptor `fd` on this core passed its
  // bound / drained to half of it. While held, the data sources of `fd` pause their receive
  // (the bytes wait in the kernel). Each is idempotent: a second hold, or a release of a fd that
  // is not held (its source ended meanwhile), does nothing.
  virtual void hold_input(int fd) noexcept = 0;
  virtual void release_input(int fd) noexcept = 0;
  // end_input ends the data sources of `fd` on this core: a send on it failed in a way that
  // ends the connection (the peer reset it), so its registrations end once their queued
  // activations are delivered. A receive started after the failure need not see the reset:
  // the failed send may have taken the socket's error.
  virtual void end_input(int fd) noexcept = 0;
  // note_accept_backoff counts a pause of a blocking-style accept that ran out of descriptors
  // or memory (`error`: EMFILE, ENFILE, ENOMEM or ENOBUFS) and reports it as an on_error event,
  // as the event layer's own accepts do.
  virtual void note_accept_backoff(int error) noexcept = 0;
  // release_task gives back what a finishing task holds beyond its capsule (policy counts).
  virtual void release_task(TaskState* task) noexcept = 0;
  // raise_error reports an error of the scheduler's own subsystems (the completion queue, the
  // capsule pool) as an on_error event: `error` an errno, `count` the core's running count.
  virtual void raise_error(Subsystem subsystem, int error, std::uint64_t count) noexcept = 0;
  // add_metrics fills in the layer's part of the core's snapshot (pending activations, socket
  // counters).
  virtual void add_metrics(CoreMetrics& metrics) const noexcept = 0;
  // arena_config returns the settings for the core's arena with the layer's own hooks added
  // (memory pressure reported as events), calling the application's hooks too.
  virtual ArenaConfig arena_config(const ArenaConfig& config) = 0;
  // summary describes the core's registrations (Runtime::dump; a walk over every slot).
  virtual RegistrationSummary summary() const noexcept = 0;
};

// EventLayers is the runtime-wide part of the layer: it makes each core's EventLayer and holds
// what the cores share (policy counts, topics). It outlives the cores.
class EventLayers {
 public:
  virtual ~EventLayers() = default;
  // make_core makes `core`'s layer; nullptr when memory is short. Call on the core's thread.
  virtual std::unique_ptr<EventLayer> make_core(Core& core) noexcept = 0;
  // release drops what the layer keeps in the cores' arenas (retained topic events); the
  // runtime calls it before it destroys the cores.
  virtual void release() noexcept = 0;
};

}  // namespace aem::detail
