// policy.hpp — limits on what an application (a runtime, or one event group of it) may
// register and run: how many registrations, how many handlers at once, how many capsules,
// which kinds of events and which executors. A refusal is errc::policy_limit, never a crash:
// a part of an application that misbehaves is held to its share of the runtime.
#pragma once

#include <aem/executor.hpp>

#include <cstdint>

namespace aem {

// SourceType names what activates a registration (defined in event.hpp).
enum class SourceType : std::uint8_t;

// mask_of returns the bit of one source type or executor, for Policy::allowed_sources and
// Policy::allowed_executors.
//
// Example:
//   policy.allowed_sources = aem::mask_of(aem::SourceType::user) | aem::mask_of(aem::SourceType::data);
constexpr std::uint32_t mask_of(SourceType type) noexcept { return 1u << static_cast<unsigned>(type); }
constexpr std::uint32_t mask_of(Executor exec) noexcept { return 1u << static_cast<unsigned>(exec); }

// kAll in allowed_sources / allowed_executors allows every type (also those added later).
inline constexpr std::uint32_t kAll = ~std::uint32_t{0};

// Policy holds the limits of a runtime (Config::policy: counted across all its cores) or of an
// event group (EventGroup::create: counted over the group's registrations and capsules, on all
// cores, in addition to the runtime's). A count of 0 and a mask of kAll mean no limit, which is
// the default: an unlimited policy costs one predictable branch per registration, activation
// and spawn, and no atomic operation.
//
// What each limit refuses, with errc::policy_limit (nothing already registered or running is
// touched):
//   - a registration (after, every, on_event, on_accept, on_data, ...) beyond max_registrations
//     live registrations (made and not yet retired: cancelled, or over with every activation
//     delivered; a cancelled one whose handler had already started retires when it returns),
//     or of a source type outside allowed_sources, or with an executor outside
//     allowed_executors;
//   - a spawn or post beyond max_capsules capsules started by spawn/post and not finished.
//     Activation capsules (handlers) are governed by max_active instead, and the capsule of an
//     aem::submit is not counted (its caller waits for it).
// max_active bounds the handlers running at once ("simultaneous events activated"): handlers
// started and not finished, a blocked (suspended) one included; a keepalive capsule counts as
// one while it works through its queue, an inline handler while it runs. An activation beyond
// it is not refused and not lost: it is queued on its registration (as when no capsule is free,
// under the registration's queue bound) and starts when a handler finishes — on the same core at
// the dispatcher's next turn, when the finished one ran on another core within about a
// millisecond (the core looks again then).
//
// Example:
//   aem::Config config;
//   config.policy.max_registrations = 10000;
//   config.policy.allowed_executors = aem::mask_of(aem::Executor::fresh_capsule) | aem::mask_of(aem::Executor::keepalive);
//   aem::Runtime rt(config);
struct Policy {
  std::uint32_t max_registrations = 0;  // live registrations; 0: no limit
  std::uint32_t max_active = 0;         // handlers running at once; 0: no limit
  std::uint32_t max_capsules = 0;       // capsules from spawn/post running at once; 0: no limit
  std::uint32_t allowed_sources = kAll;    // mask_of(SourceType) bits
  std::uint32_t allowed_executors = kAll;  // mask_of(Executor) bits

  // allows tells whether the policy lets a registration use `type` / `exec`.
  constexpr bool allows(SourceType type) const noexcept { return (allowed_sources & mask_of(type)) != 0; }
  constexpr bool allows(Executor exec) const noexcept { return (allowed_executors & mask_of(exec)) != 0; }
  // limits_types tells whether some source type or executor is forbidden.
  constexpr bool limits_types() const noexcept { return allowed_sources != kAll || allowed_executors != kAll; }
  // unlimited tells whether the policy limits nothing.
  constexpr bool unlimited() const noexcept {
    return max_registrations == 0 && max_active == 0 && max_capsules == 0 && !limits_types();
  }
};

}  // namespace aem
