// group_state.hpp — the counters behind aem::Policy (the runtime's and each event group's) and
// the state of an event group. The counts are shared by all cores, so they are atomics; a
// limit that is not set is not counted at all (the runtime's), so an unlimited runtime pays
// one branch and no atomic operation per registration, activation or spawn.
#pragma once

#include "runtime/sched/core.hpp"
#include "runtime/events/event_table.hpp"

#include <aem/detail/registration.hpp>
#include <aem/executor.hpp>
#include <aem/group.hpp>
#include <aem/policy.hpp>

#include <atomic>
#include <cstdint>

namespace aem::detail {

class RuntimeImpl;

// Limits are a policy and its live counts.
struct Limits {
  Policy policy;
  std::atomic<std::uint32_t> registrations{0};
  std::atomic<std::uint32_t> active{0};
  std::atomic<std::uint32_t> capsules{0};

  // allows tells whether a registration of `kind` run by `exec` is allowed.
  bool allows(SourceType kind, Executor exec) const noexcept;

  // take counts one more in `counter` unless that would pass `max` (0: no limit).
  static bool take(std::atomic<std::uint32_t>& counter, std::uint32_t max) noexcept {
    if (max == 0) {
      counter.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
    std::uint32_t seen = counter.load(std::memory_order_relaxed);
    do {
      if (seen >= max) return false;
    } while (!counter.compare_exchange_weak(seen, seen + 1, std::memory_order_relaxed));
    return true;
  }
  static void give(std::atomic<std::uint32_t>& counter) noexcept { counter.fetch_sub(1, std::memory_order_relaxed); }

  // waiting_cores marks the cores (bit index % 64) holding an activation back on max_active,
  // so that the core that frees a slot nudges them instead of leaving them to their next
  // periodic retry.
  std::atomic<std::uint64_t> waiting_cores{0};
  // take_active takes a max_active slot, or marks `core` as waiting for one (and tries once
  // more: a slot given back between the first try and the mark is not missed).
  bool take_active(unsigned core) noexcept;
  // give_active gives a slot back and nudges the cores waiting for one.
  void give_active(RuntimeImpl& runtime) noexcept;
};

// RuntimeLimits are the runtime's Config::policy: a count is kept only when it is limited.
struct RuntimeLimits : Limits {
  bool any = false;  // some limit is set: registrations and spawns look here
  bool per_registration = false;  // max_registrations or max_active: registrations are policed

  void set(const Policy& p) noexcept {
    policy = p;
    any = !p.unlimited();
    per_registration = p.max_registrations != 0 || p.max_active != 0;
  }
};

// GroupState is one event group (not the default one, which has none). Every count is kept.
struct GroupState {
  std::atomic<std::uint32_t> refs{1};  // handles, capsules and registrations
  std::atomic<bool> closed{false};     // cancel() was called
  RuntimeImpl* runtime = nullptr;
  std::uint8_t tag = 0;  // the runtime's tag, checked with the pointer
  Limits limits;
};

// TaskState::policy_holds bits.
inline constexpr std::uint8_t kHoldsGroup = 1;            // a reference on TaskState::group
inline constexpr std::uint8_t kHoldsGroupCapsule = 2;     // one of the group's capsules
inline constexpr std::uint8_t kHoldsRuntimeCapsule = 4;   // one of the runtime's capsules

// current_group returns the group of what runs on `core` now: the running capsule's, or the
// inline handler's registration's; nullptr for the default group.
// Inline: every registration and spawn asks.
inline GroupState* current_group(Core* core) noexcept {
  if (CapsuleControl* capsule = core->current()) return static_cast<GroupState*>(capsule->task->group);
  if (Registration* r = event_table(core)->dispatcher().inline_registration()) return r->group;
  return nullptr;
}

// admit_spawn settles the group of a task about to be spawned from `core` and takes what it
// holds against the policies into task-to-be fields `group`/`holds` (nothing is taken on error).
// Errors: errc::cancelled (a closed group), errc::policy_limit, errc::invalid_argument (a group
// of another runtime), errc::out_of_memory (a fresh group).
Result<void> admit_spawn(Core* core, const SpawnGroup& choice, GroupState*& group, std::uint8_t& holds) noexcept;
// release_task gives back what a task holds (TaskState::policy_holds); it clears them.
void release_task(RuntimeImpl& runtime, TaskState* task) noexcept;
// release_holds gives back holds that never reached a task (a spawn that failed after admit_spawn).
void release_holds(RuntimeImpl& runtime, GroupState* group, std::uint8_t holds) noexcept;

// admit_registration checks a registration made on `core` in `group` against the runtime's
// and the group's policies and counts it. `policed` tells whether the registration must give
// the counts back when retired (Registration::policed). Errors: errc::policy_limit,
// errc::cancelled (a closed group).
Result<void> admit_registration(Core* core, GroupState* group, const RegistrationOptions& options, bool& policed) noexcept;
// release_registration gives back what admit_registration took for a policed registration.
void release_registration(RuntimeImpl& runtime, GroupState* group) noexcept;

}  // namespace aem::detail
