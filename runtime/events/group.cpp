// group.cpp — aem::Policy and event groups: admitting registrations and spawns, counting the
// handlers that run, giving the counts back, and cancelling a group on every core.
#include "runtime/events/runtime_events.hpp"
#include "runtime/sched/core.hpp"
#include "runtime/events/event_table.hpp"
#include "runtime/events/group_state.hpp"
#include "runtime/sched/runtime_impl.hpp"

#include <aem/cross_core.hpp>
#include <aem/event.hpp>
#include <aem/group.hpp>

#include <new>

namespace aem {
namespace detail {
namespace {

// belongs tells whether `group` was made by `runtime` (the tag guards against a new runtime
// at the address of a dead one).
bool belongs(const GroupState* group, RuntimeImpl& runtime) noexcept {
  return group->runtime == &runtime && group->tag == runtime.tag();
}

}  // namespace

void group_retain(GroupState* group) noexcept {
  if (group != nullptr) group->refs.fetch_add(1, std::memory_order_relaxed);
}

void group_release(GroupState* group) noexcept {
  if (group != nullptr && group->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete group;
}

bool Limits::allows(SourceType kind, Executor exec) const noexcept {
  return policy.allows(kind) && policy.allows(exec);
}

// ---- registrations ---------------------------------------------------------------------

Result<void> admit_registration(Core* core, GroupState* group, const RegistrationOptions& options, bool& policed) noexcept {
  RuntimeLimits& runtime = runtime_limits(core->runtime());
  if (runtime.any && !runtime.allows(options.kind, options.exec)) return errc::policy_limit;
  if (group != nullptr) {
    if (group->closed.load(std::memory_order_acquire)) return errc::cancelled;
    if (!group->limits.allows(options.kind, options.exec)) return errc::policy_limit;
    if (!Limits::take(group->limits.registrations, group->limits.policy.max_registrations)) return errc::policy_limit;
  }
  if (runtime.policy.max_registrations != 0 && !Limits::take(runtime.registrations, runtime.policy.max_registrations)) {
    if (group != nullptr) Limits::give(group->limits.registrations);
    return errc::policy_limit;
  }
  group_retain(group);
  policed = group != nullptr || runtime.per_registration;
  return {};
}

void release_registration(RuntimeImpl& runtime, GroupState* group) noexcept {
  RuntimeLimits& limits = runtime_limits(runtime);
  if (limits.policy.max_registrations != 0) Limits::give(limits.registrations);
  if (group != nullptr) {
    Limits::give(group->limits.registrations);
    group_release(group);
  }
}

void Dispatcher::policy_retire(Registration* r) noexcept {
  release_registration(core_.runtime(), r->group);
  r->group = nullptr;
  r->policed = false;
}

bool Limits::take_active(unsigned core) noexcept {
  if (take(active, policy.max_active)) return true;
  waiting_cores.fetch_or(std::uint64_t{1} << (core % 64), std::memory_order_seq_cst);
  // Pairs with the fence in give_active: either that core sees the mark, or this try sees
  // the slot it gave back.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return take(active, policy.max_active);
}

void Limits::give_active(RuntimeImpl& runtime) noexcept {
  give(active);
  if (policy.max_active == 0) return;
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (waiting_cores.load(std::memory_order_relaxed) == 0) return;
  const std::uint64_t waiting = waiting_cores.exchange(0, std::memory_order_acq_rel);
  for (unsigned i = 0; i < runtime.core_count(); ++i) {
    if ((waiting >> (i % 64)) & 1) runtime.core(i).nudge();
  }
}

bool Dispatcher::policy_enter(Registration* r) noexcept {
  GroupState* group = r->group;
  RuntimeLimits& runtime = runtime_limits(core_.runtime());
  if (group != nullptr && !group->limits.take_active(core_index_)) {
    start_held_ = true;
    return false;
  }
  if (runtime.policy.max_active != 0 && !runtime.take_active(core_index_)) {
    if (group != nullptr) group->limits.give_active(core_.runtime());
    start_held_ = true;
    return false;
  }
  return true;
}

void Dispatcher::policy_leave(Registration* r) noexcept {
  RuntimeLimits& runtime = runtime_limits(core_.runtime());
  if (runtime.policy.max_active != 0) runtime.give_active(core_.runtime());
  if (r->group != nullptr) r->group->limits.give_active(core_.runtime());
}

// ---- capsules --------------------------------------------------------------------------

Result<void> admit_spawn(Core* core, const SpawnGroup& choice, GroupState*& group_out, std::uint8_t& holds_out) noexcept {
  RuntimeImpl& runtime = core->runtime();
  GroupState* group = nullptr;
  switch (choice.mode()) {
    case SpawnGroup::Mode::inherit:
      group = current_group(core);
      group_retain(group);
      break;
    case SpawnGroup::Mode::fresh:
      group = new (std::nothrow) GroupState();
      if (group == nullptr) return errc::out_of_memory;
      group->runtime = &runtime;
      group->tag = runtime.tag();
      break;
    case SpawnGroup::Mode::given:
      group = choice.group().state();
      if (group != nullptr && !belongs(group, runtime)) return errc::invalid_argument;
      group_retain(group);
      break;
  }
  std::uint8_t holds = group != nullptr ? kHoldsGroup : 0;
  if (group != nullptr) {
    errc refused = errc::ok;
    if (group->closed.load(std::memory_order_acquire)) refused = errc::cancelled;
    else if (!Limits::take(group->limits.capsules, group->limits.policy.max_capsules)) refused = errc::policy_limit;
    if (refused != errc::ok) {
      release_holds(runtime, group, holds);
      return refused;
    }
    holds |= kHoldsGroupCapsule;
  }
  RuntimeLimits& limits = runtime_limits(runtime);
  if (limits.policy.max_capsules != 0) {
    if (!Limits::take(limits.capsules, limits.policy.max_capsules)) {
      release_holds(runtime, group, holds);
      return errc::policy_limit;
    }
    holds |= kHoldsRuntimeCapsule;
  }
  group_out = group;
  holds_out = holds;
  return {};
}

void release_holds(RuntimeImpl& runtime, GroupState* group, std::uint8_t holds) noexcept {
  if ((holds & kHoldsRuntimeCapsule) != 0) Limits::give(runtime_limits(runtime).capsules);
  if ((holds & kHoldsGroupCapsule) != 0) Limits::give(group->limits.capsules);
  if ((holds & kHoldsGroup) != 0) group_release(group);
}

void release_task(RuntimeImpl& runtime, TaskState* task) noexcept {
  release_holds(runtime, static_cast<GroupState*>(task->group), task->policy_holds);
  task->policy_holds = 0;
  task->group = nullptr;
}

}  // namespace detail

// ---- EventGroup ----------------------------------------------------------------------------

namespace {

constexpr Policy kUnlimited{};

}  // namespace

Result<EventGroup> EventGroup::create(Policy policy) {
  detail::Core* core = detail::Core::api_caller();
  if (core == nullptr) return errc::not_in_capsule;
  auto* group = new (std::nothrow) detail::GroupState();
  if (group == nullptr) return errc::out_of_memory;
  group->runtime = &core->runtime();
  group->tag = core->runtime().tag();
  group->limits.policy = policy;
  return EventGroup(group);
}

const Policy& EventGroup::policy() const noexcept { return state_ != nullptr ? state_->limits.policy : kUnlimited; }

GroupStats EventGroup::stats() const noexcept {
  GroupStats stats;
  if (state_ == nullptr) return stats;
  stats.registrations = state_->limits.registrations.load(std::memory_order_relaxed);
  stats.active = state_->limits.active.load(std::memory_order_relaxed);
  stats.capsules = state_->limits.capsules.load(std::memory_order_relaxed);
  return stats;
}

bool EventGroup::cancelled() const noexcept {
  return state_ != nullptr && state_->closed.load(std::memory_order_acquire);
}

Result<std::size_t> EventGroup::cancel() const {
  detail::GroupState* group = state_;
  if (group == nullptr) return errc::invalid_argument;
  bool in_capsule = false;
  detail::Core* core = detail::Core::api_caller(in_capsule);
  if (core == nullptr) return errc::not_in_capsule;
  detail::RuntimeImpl& runtime = core->runtime();
  if (!detail::belongs(group, runtime)) return errc::invalid_argument;
  // Refused before anything is done: a group closed, and cancelled on this core only, would
  // keep its other cores' registrations while refusing new ones.
  if (!in_capsule && runtime.core_count() > 1) {
    (void)event_table(core)->note_inline_block();
    return errc::inline_handler_blocked;
  }
  // Closed first: a registration on a core after its sweep below sees it and is refused, one
  // before it is in the table for the sweep (registering does not suspend between reserving
  // the slot and arming it, and the sweep runs in a capsule of that core).
  group->closed.store(true, std::memory_order_seq_cst);
  std::size_t cancelled = event_table(core)->cancel_group(group);
  for (unsigned i = 0; i < runtime.core_count(); ++i) {
    if (i == core->index()) continue;
    // The caller's handle keeps the group alive while the other cores look.
    Result<std::size_t> there = submit(i, [group] { return detail::event_table(detail::Core::current_core())->cancel_group(group); });
    if (!there) return there.error();
    cancelled += *there;
  }
  return cancelled;
}

namespace this_capsule {

EventGroup group() {
  detail::Core* core = detail::Core::current_core();
  if (core == nullptr || event_table(core) == nullptr) return EventGroup();
  detail::GroupState* group = detail::current_group(core);
  detail::group_retain(group);
  return EventGroup(group);
}

}  // namespace this_capsule
}  // namespace aem
