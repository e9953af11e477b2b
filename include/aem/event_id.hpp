// event_id.hpp — EventId: the handle of one registration (a timer, a socket event, ...), and
// cancel().
#pragma once

#include <aem/export.hpp>
#include <aem/result.hpp>

#include <cstdint>

namespace aem {

// EventId names a registration: runtime tag (8 bits) | core (8) | generation (24) | slot (24).
// The generation makes ids of cancelled registrations stale: they are detected
// (errc::stale_event_id), never confused with a later registration in the same slot. The tag
// detects ids from another Runtime (errc::foreign_event_id). A default EventId is invalid.
class EventId {
 public:
  constexpr EventId() noexcept = default;
  constexpr explicit EventId(std::uint64_t raw) noexcept : raw_(raw) {}
  constexpr EventId(std::uint8_t tag, unsigned core, std::uint32_t generation, std::uint32_t slot) noexcept
      : raw_((std::uint64_t{tag} << 56) | (std::uint64_t{core & 0xffu} << 48) |
             (std::uint64_t{generation & 0xffffffu} << 24) | (slot & 0xffffffu)) {}

  constexpr std::uint64_t value() const noexcept { return raw_; }
  constexpr bool valid() const noexcept { return raw_ != 0; }
  constexpr std::uint8_t tag() const noexcept { return static_cast<std::uint8_t>(raw_ >> 56); }
  constexpr unsigned core() const noexcept { return static_cast<unsigned>((raw_ >> 48) & 0xffu); }
  constexpr std::uint32_t generation() const noexcept { return static_cast<std::uint32_t>((raw_ >> 24) & 0xffffffu); }
  constexpr std::uint32_t slot() const noexcept { return static_cast<std::uint32_t>(raw_ & 0xffffffu); }

  friend constexpr bool operator==(EventId a, EventId b) noexcept { return a.raw_ == b.raw_; }

 private:
  std::uint64_t raw_ = 0;
};

// cancel stops a registration: no activation starts after it returns (one already running
// finishes). Call from a capsule on any core; an id of another core is cancelled there.
// Errors: errc::stale_event_id (cancelled already, or a one-shot timer that has fired),
// errc::foreign_event_id (another runtime's id, or an invalid one), errc::not_in_capsule.
AEM_EXPORT Result<void> cancel(EventId id);

}  // namespace aem
