// event_table.hpp — a core's registrations: slots addressed by EventId (generation-tagged),
// each holding a handler and the source's state. Timers are the first source; the other event
// sources register here too.
#pragma once

#include "runtime/capsule_control.hpp"

#include <aem/event_id.hpp>
#include <aem/result.hpp>
#include <aem/timer.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace aem::detail {

class Core;

// Registration is one slot. Its address is stable (slots live in fixed chunks), which the
// armed timer node needs.
struct Registration {
  CoreTimer timer;
  const HandlerOps* ops = nullptr;
  void* handler = nullptr;  // `inline_storage`, or heap memory for large handlers
  Duration period{};        // zero: one-shot
  std::uint32_t generation = 1;
  std::uint32_t index = 0;
  std::uint32_t running = 0;  // activations whose capsule has not finished
  std::uint32_t pending = 0;  // activations waiting for a capsule (the pool was exhausted)
  Priority priority = Priority::normal;
  bool in_use = false;
  bool cancelled = false;
  bool heap_handler = false;
  bool on_pending_list = false;
  Registration* next_free = nullptr;
  Registration* next_pending = nullptr;
  static constexpr std::size_t kInlineBytes = 48;
  alignas(std::max_align_t) unsigned char inline_storage[kInlineBytes];
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
  // cancel stops the registration named by `id` (which must be of this core).
  Result<void> cancel(EventId id) noexcept;
  // cancel_all stops every registration (shutdown).
  void cancel_all() noexcept;
  // retry_pending starts activations that found the capsule pool empty.
  void retry_pending() noexcept;
  bool has_pending() const noexcept { return pending_head_ != nullptr; }
  std::size_t size() const noexcept { return in_use_; }

 private:
  struct Activation;
  static void on_timer(CoreTimer* timer) noexcept;
  EventId id_of(const Registration* registration) const noexcept;
  Registration* slot(std::uint32_t index) noexcept;
  bool grow() noexcept;
  void activate(Registration* registration) noexcept;
  bool start_activation(Registration* registration) noexcept;
  void activation_done(Registration* registration) noexcept;
  void retire(Registration* registration) noexcept;

  Core& core_;
  std::uint8_t tag_;
  std::vector<Registration*> chunks_;
  Registration* free_ = nullptr;
  Registration* pending_head_ = nullptr;
  Registration* pending_tail_ = nullptr;
  std::size_t in_use_ = 0;
};

}  // namespace aem::detail
