// error_event.cpp — subsystem errors as events (aem::on_error). A core with on_error
// registrations has an ErrorPort: a bounded lock-free buffer that any core pushes error records
// into, and an eventfd that wakes the port's reader (a registration of the core's own table,
// run inline on its dispatcher), which hands each record to the core's registrations in order.
// Raising therefore never blocks nor allocates on the raising core, wherever it happens (inside
// a source's dispatch, an arena callback, the backend's reaping): the records are activated
// later, on the dispatcher of the registrations' core, never re-entrantly.
#include "runtime/events/sources/error_event.hpp"

#include "runtime/sched/core.hpp"
#include "runtime/events/event_table.hpp"
#include "runtime/events/sources/fd_reader.hpp"
#include "runtime/sched/runtime_impl.hpp"

#include <aem/error_event.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <new>
#include <sys/eventfd.h>
#include <unistd.h>
#include <utility>
#include <vector>

namespace aem::detail {
namespace {

constexpr unsigned kSubsystems = static_cast<unsigned>(Subsystem::capsule_pool) + 1;  // the last one
constexpr std::size_t kPortRecords = 64;  // per receiving core: a burst beyond it is coalesced

struct ErrorRecord {
  std::uint64_t count = 0;
  std::int32_t error = 0;
  std::uint32_t core = 0;
  std::uint8_t subsystem = 0;
};

// ErrorRing is a bounded multi-producer queue (Vyukov's): push from any thread fails instead of
// waiting when the ring is full; pop on the owner only.
class ErrorRing {
 public:
  ErrorRing() noexcept {
    for (std::size_t i = 0; i < kPortRecords; ++i) cells_[i].sequence.store(i, std::memory_order_relaxed);
  }
  bool push(const ErrorRecord& record) noexcept {
    std::size_t position = enqueue_.load(std::memory_order_relaxed);
    for (;;) {
      Cell& cell = cells_[position % kPortRecords];
      const std::size_t sequence = cell.sequence.load(std::memory_order_acquire);
      const auto lag = static_cast<std::ptrdiff_t>(sequence - position);
      if (lag == 0) {
        if (enqueue_.compare_exchange_weak(position, position + 1, std::memory_order_relaxed)) {
          cell.record = record;
          cell.sequence.store(position + 1, std::memory_order_release);
          return true;
        }
      } else if (lag < 0) {
        return false;  // full
      } else {
        position = enqueue_.load(std::memory_order_relaxed);
      }
    }
  }
  bool pop(ErrorRecord& record) noexcept {
    Cell& cell = cells_[dequeue_ % kPortRecords];
    const std::size_t sequence = cell.sequence.load(std::memory_order_acquire);
    if (static_cast<std::ptrdiff_t>(sequence - (dequeue_ + 1)) < 0) return false;  // empty, or being written
    record = cell.record;
    cell.sequence.store(dequeue_ + kPortRecords, std::memory_order_release);
    ++dequeue_;
    return true;
  }

 private:
  struct Cell {
    std::atomic<std::size_t> sequence{0};
    ErrorRecord record;
  };
  Cell cells_[kPortRecords];
  alignas(64) std::atomic<std::size_t> enqueue_{0};
  alignas(64) std::size_t dequeue_ = 0;
};

const char* detail_of(Subsystem subsystem, int error) noexcept {
  switch (subsystem) {
    case Subsystem::arena:
      return error == EFBIG ? "arena: a request larger than the region went to the exhaustion policy"
                            : "arena: the region is exhausted; the exhaustion policy served the request";
    case Subsystem::accept: return "accept: out of file descriptors or memory; accepting backs off";
    case Subsystem::completion_queue: return "completion queue: completions waited in the kernel for room";
    case Subsystem::capsule_pool:
      return "capsule pool: no stack could be mapped for more capsules (vm.max_map_count or memory); the pool "
             "grows again at the next spawn that finds it empty";
  }
  return "";
}

}  // namespace

struct ErrorPort {
  ErrorRing ring;
  std::atomic<bool> open{false};       // the reader is registered (cleared when it is cancelled)
  std::atomic<bool> wanted{false};     // registrations may be here (cleared lazily)
  std::atomic<bool> signalled{false};  // the eventfd was written since the last drain
  int fd = -1;
  // The owner core's only:
  std::vector<EventId> registrations;
  std::vector<std::uint64_t> latest;  // [core * kSubsystems + subsystem]: the highest count seen

  ~ErrorPort() {
    if (fd >= 0) ::close(fd);
  }
};

namespace {

// drain runs on the port's core (its reader: a PortReader, fd_reader.hpp): each record goes to every registration, in order.
void drain(ErrorPort& port) noexcept {
  std::uint64_t ticks = 0;
  while (::read(port.fd, &ticks, sizeof ticks) > 0) {
  }
  // Before popping: a record pushed after this store writes the eventfd again.
  port.signalled.store(false, std::memory_order_seq_cst);
  EventTable& table = *event_table(Core::current_core());
  ErrorRecord record;
  while (port.ring.pop(record)) {
    std::uint64_t& latest = port.latest[std::size_t{record.core} * kSubsystems + record.subsystem];
    latest = std::max(latest, record.count);
    for (std::size_t i = 0; i < port.registrations.size();) {
      Payload payload;
      payload.value = static_cast<int>(record.subsystem | (record.core << 8));
      payload.error = record.error;
      payload.lost = static_cast<std::uint32_t>(record.count);  // the rest: from `latest`
      if (table.activate_kind(port.registrations[i], SourceType::error, payload)) {
        ++i;
      } else {
        port.registrations.erase(port.registrations.begin() + static_cast<std::ptrdiff_t>(i));  // cancelled
      }
    }
  }
  if (port.registrations.empty()) port.wanted.store(false, std::memory_order_relaxed);
}

// port_here returns the calling core's port, making it and its reader on first use.
Result<ErrorPort*> port_here(Core& core) {
  EventTable& table = event_table(core);
  if (ErrorPort* port = table.error_port().load(std::memory_order_acquire); port != nullptr) {
    if (port->open.load(std::memory_order_acquire)) return port;
    return make_error_code(errc::shutting_down);  // its reader was cancelled: the core stops
  }
  auto* port = new (std::nothrow) ErrorPort;
  if (port == nullptr) return make_error_code(errc::out_of_memory);
  try {
    port->latest.assign(std::size_t{core.runtime().core_count()} * kSubsystems, 0);
    port->registrations.reserve(4);
  } catch (const std::bad_alloc&) {
    delete port;
    return make_error_code(errc::out_of_memory);
  }
  port->fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (port->fd < 0) {
    const int error = errno;
    delete port;
    return std::error_code(error, std::generic_category());
  }
  Result<EventId> reader = arm_port_reader<&drain>(port);
  if (!reader) {
    delete port;
    return reader.error();
  }
  port->open.store(true, std::memory_order_release);
  table.error_port().store(port, std::memory_order_release);
  return port;
}

}  // namespace

void free_error_port(ErrorPort* port) noexcept { delete port; }

void raise_subsystem_error(Core& core, Subsystem subsystem, int error, std::uint64_t count) noexcept {
  RuntimeImpl& runtime = core.runtime();
  const ErrorRecord record{count, error, core.index(), static_cast<std::uint8_t>(subsystem)};
  for (unsigned k = 0; k < runtime.core_count(); ++k) {
    EventTable* table = &event_table(runtime.core(k));
    ErrorPort* port = table != nullptr ? table->error_port().load(std::memory_order_acquire) : nullptr;
    if (port == nullptr || !port->open.load(std::memory_order_acquire) || !port->wanted.load(std::memory_order_relaxed)) {
      continue;
    }
    if (!port->ring.push(record)) continue;  // full: coalesced (the next record's count shows it)
    if (!port->signalled.exchange(true, std::memory_order_seq_cst)) {
      const std::uint64_t one = 1;
      (void)!::write(port->fd, &one, sizeof one);
    }
  }
}

ArenaConfig with_pressure_events(Core& core, const ArenaConfig& config) {
  ArenaConfig out = config;
  out.on_pressure = [&core, user = config.on_pressure, raised = std::uint64_t{0}](const MemoryPressure& pressure) mutable {
    raise_subsystem_error(core, Subsystem::arena, pressure.oversized ? EFBIG : ENOMEM, ++raised);
    if (user) user(pressure);
  };
  return out;
}

Result<EventId> arm_error(const RegistrationSlot& slot, const HandlerOps* ops) noexcept {
  Core& core = *Core::current_core();
  EventTable& table = event_table(core);
  auto* registration = static_cast<Registration*>(slot.registration);
  const EventId id = table.arm_kind(registration, ops, SourceType::error);
  Result<ErrorPort*> port = make_error_code(errc::out_of_memory);
  try {
    port = port_here(core);
    if (port) (*port)->registrations.push_back(id);
  } catch (const std::bad_alloc&) {
    port = make_error_code(errc::out_of_memory);
  }
  if (!port) {
    (void)table.cancel(id);
    return port.error();
  }
  (*port)->wanted.store(true, std::memory_order_relaxed);
  return id;
}

SubsystemError decode_subsystem_error(const Payload& payload) noexcept {
  SubsystemError out;
  const auto packed = static_cast<std::uint32_t>(payload.value);
  out.subsystem = static_cast<Subsystem>(packed & 0xffu);
  out.core = packed >> 8;
  out.code = std::error_code(payload.error, std::generic_category());
  out.detail = detail_of(out.subsystem, payload.error);
  out.count = payload.lost;
  // The count travelled as its low 32 bits; the port has seen the full value or a later one.
  Core* core = Core::current_core();
  ErrorPort* port = core != nullptr ? event_table(core)->error_port().load(std::memory_order_acquire) : nullptr;
  const std::size_t slot = std::size_t{out.core} * kSubsystems + (packed & 0xffu);
  if (port != nullptr && slot < port->latest.size()) {
    const std::uint64_t latest = port->latest[slot];
    out.count = latest - static_cast<std::uint32_t>(static_cast<std::uint32_t>(latest) - payload.lost);
  }
  return out;
}

}  // namespace aem::detail
