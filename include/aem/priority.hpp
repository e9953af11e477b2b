// priority.hpp — event and capsule priorities.
#pragma once

#include <cstdint>

namespace aem {

// kPriorityLevels is the number of distinct priorities. Higher values run first.
inline constexpr unsigned kPriorityLevels = 8;

// Priority orders ready capsules on a core: a higher level always runs before a lower one
// (within the anti-starvation bound of Config::starvation_budget), FIFO within a level.
// Any value 0..7 is valid: `aem::Priority{3}`; the names are conventional anchors.
enum class Priority : std::uint8_t {
  idle = 0,
  low = 2,
  normal = 4,
  high = 6,
  critical = 7,
};

// is_valid reports whether `p` is within 0..kPriorityLevels-1.
constexpr bool is_valid(Priority p) noexcept { return static_cast<unsigned>(p) < kPriorityLevels; }

}  // namespace aem
