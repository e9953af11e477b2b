// event_table.hpp — a core's registrations: slots addressed by EventId (generation-tagged),
// each holding a handler, its source's state and the activations that have not started yet.
// Sources: timers (timers.cpp) and sockets (io_sources.cpp); each activation runs its handler
// in a fresh capsule or in the registration's keepalive capsule (aem::Executor).
#pragma once

#include "io/backend.hpp"
#include "io/buffer_ring.hpp"
#include "runtime/capsule_control.hpp"
#include "runtime/payload_queue.hpp"

#include <aem/detail/registration.hpp>
#include <aem/event_id.hpp>
#include <aem/executor.hpp>
#include <aem/result.hpp>
#include <aem/time.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace aem::detail {

class Core;
struct Registration;

// SourceOp is the completion record of a registration's in-flight operation.
struct SourceOp {
  Completion completion;
  Registration* owner = nullptr;
};

// Registration is one slot. Its address is stable (slots live in fixed chunks), which the
// armed timer node and the in-flight operation need.
struct Registration {
  CoreTimer timer;  // timers: the expiry; accept: the end of an fd-exhaustion back-off
  SourceOp op;
  const HandlerOps* ops = nullptr;
  void* handler = nullptr;  // `inline_storage`, or heap memory for large handlers
  Duration period{};        // timers: zero for one-shot; accept: the current back-off
  PayloadQueue queue;       // activations not started yet
  std::uint64_t lost = 0;   // activations dropped because the queue could not grow
  std::uint32_t generation = 1;
  std::uint32_t index = 0;
  std::uint32_t running = 0;  // activations whose capsule has not finished
  int fd = -1;
  std::uint32_t events = 0;
  Priority priority = Priority::normal;
  SourceKind kind = SourceKind::timer;
  Executor exec = Executor::fresh_capsule;
  bool in_use = false;
  bool cancelled = false;
  bool ended = false;          // the source will not activate again (I/O sources)
  bool heap_handler = false;
  bool on_pending_list = false;
  bool op_in_flight = false;
  bool worker_active = false;  // keepalive: its capsule is running
  bool backing_off = false;    // accept: waiting for fds to free up
  bool on_rearm_list = false;  // data: waiting for receive buffers
  Registration* next_free = nullptr;
  Registration* next_pending = nullptr;
  Registration* next_rearm = nullptr;
  static constexpr std::size_t kInlineBytes = 48;
  alignas(std::max_align_t) unsigned char inline_storage[kInlineBytes];
};

// SocketCounters are a core's socket-source events worth telling apart.
struct SocketCounters {
  std::uint64_t accept_backoffs = 0;    // EMFILE/ENFILE/ENOMEM pauses of an accept
  std::uint64_t receive_starvations = 0;  // receives paused for want of buffers
};

class EventTable {
 public:
  static constexpr std::uint32_t kMaxSlots = 1u << 24;

  EventTable(Core& core, std::uint8_t runtime_tag) noexcept;
  ~EventTable();
  EventTable(const EventTable&) = delete;
  EventTable& operator=(const EventTable&) = delete;

  // reserve takes a free slot with room for a handler of `size`/`align`.
  Result<Registration*> reserve(std::size_t size, std::size_t align, Priority priority) noexcept;
  // unreserve gives back a slot whose handler was never constructed.
  void unreserve(Registration* registration) noexcept;
  // arm_timer starts a reserved timer registration and returns its id.
  EventId arm_timer(Registration* registration, const HandlerOps* ops, TimePoint first, Duration period) noexcept;
  // arm_source starts a reserved socket registration (io_sources.cpp). On error the handler
  // is destroyed and the slot freed.
  Result<EventId> arm_source(Registration* registration, const HandlerOps* ops, const SourceSpec& spec) noexcept;
  // cancel stops the registration named by `id` (which must be of this core).
  Result<void> cancel(EventId id) noexcept;
  // cancel_all stops every registration (shutdown).
  void cancel_all() noexcept;
  // has_deferred / run_deferred: activations that found the capsule pool empty, and receives
  // waiting for buffers. The loop runs them every turn while there are any.
  bool has_deferred() const noexcept { return pending_head_ != nullptr || rearm_head_ != nullptr; }
  void run_deferred() noexcept;
  std::size_t size() const noexcept { return in_use_; }
  const SocketCounters& socket_counters() const noexcept { return counters_; }
  const BufferRing* buffer_ring() const noexcept { return buffer_ring_.get(); }

 private:
  struct Activation;
  static void on_timer(CoreTimer* timer) noexcept;
  static void on_backoff_end(CoreTimer* timer) noexcept;
  static void on_source_complete(Completion* completion, int result, std::uint32_t flags) noexcept;
  EventId id_of(const Registration* registration) const noexcept;
  Registration* slot(std::uint32_t index) noexcept;
  bool grow() noexcept;
  void activate(Registration* registration, Payload& payload) noexcept;
  bool start_activation(Registration* registration, Payload* payload) noexcept;
  void add_pending(Registration* registration) noexcept;
  void retry_pending() noexcept;
  void activation_done(Registration* registration) noexcept;
  void maybe_retire(Registration* registration) noexcept;
  void retire(Registration* registration) noexcept;
  void discard_queue(Registration* registration) noexcept;
  // Socket sources (io_sources.cpp).
  void submit_source(Registration* registration) noexcept;
  void source_completed(Registration* registration, int result, std::uint32_t flags) noexcept;
  void accept_completed(Registration* registration, int result, bool more) noexcept;
  void data_completed(Registration* registration, int result, std::uint32_t flags) noexcept;
  void poll_completed(Registration* registration, int result, bool more) noexcept;
  void stop_source(Registration* registration) noexcept;
  void rearm_starved() noexcept;
  Result<void> ensure_buffer_ring() noexcept;

  Core& core_;
  std::uint8_t tag_;
  std::vector<Registration*> chunks_;
  Registration* free_ = nullptr;
  Registration* pending_head_ = nullptr;
  Registration* pending_tail_ = nullptr;
  Registration* rearm_head_ = nullptr;
  std::size_t in_use_ = 0;
  std::unique_ptr<BufferRing> buffer_ring_;
  bool buffer_ring_registered_ = false;
  SocketCounters counters_;
};

}  // namespace aem::detail
