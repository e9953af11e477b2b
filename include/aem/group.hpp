// group.hpp — event groups: the registrations and capsules of one part of an application,
// limited together by a Policy and cancelled together. A spawned capsule starts in its
// parent's group, in a fresh one, or in a given one (SpawnOptions::group).
#pragma once

#include <aem/export.hpp>
#include <aem/policy.hpp>
#include <aem/result.hpp>

#include <cstddef>
#include <cstdint>
#include <utility>

namespace aem {

namespace detail {
struct GroupState;
AEM_EXPORT void group_retain(GroupState* group) noexcept;
AEM_EXPORT void group_release(GroupState* group) noexcept;
}  // namespace detail

// GroupStats count what belongs to a group now (all cores).
struct GroupStats {
  std::uint32_t registrations = 0;  // live registrations
  std::uint32_t active = 0;         // handlers running
  std::uint32_t capsules = 0;       // capsules from spawn/post running
};

// EventGroup is a handle on an event group (reference-counted: the group lives while a handle,
// a capsule or a registration refers to it). Every registration belongs to the group of the
// capsule (or inline handler) that made it; a handler runs in its registration's group. A
// spawned capsule inherits its parent's group unless SpawnOptions::group says otherwise. The
// root capsule (Runtime::run's function), Runtime::submit's work and everything they start
// belong to the runtime's default group: a default-constructed EventGroup, unlimited, counted
// by nobody but the runtime's Config::policy, and never cancelled as a whole.
//
// The handle may be copied and used on any core; the group's registrations live on the cores
// that made them.
//
// Example:
//   auto session = aem::EventGroup::create({.max_registrations = 64, .max_active = 4});
//   auto worker = aem::spawn([] { serve_session(); }, {.group = *session});  // its events are the session's
//   ...
//   session->cancel();  // every registration of the session, on every core, is cancelled
class EventGroup {
 public:
  // EventGroup() is the runtime's default group.
  EventGroup() noexcept = default;
  EventGroup(const EventGroup& other) noexcept : state_(other.state_) {
    if (state_ != nullptr) detail::group_retain(state_);  // the default group is not counted
  }
  EventGroup(EventGroup&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
  EventGroup& operator=(EventGroup other) noexcept {
    std::swap(state_, other.state_);
    return *this;
  }
  ~EventGroup() {
    if (state_ != nullptr) detail::group_release(state_);
  }

  // create makes a new group, limited by `policy`, of the calling capsule's runtime. Call from
  // a capsule or an inline handler. Errors: errc::not_in_capsule, errc::out_of_memory.
  AEM_EXPORT static Result<EventGroup> create(Policy policy = {});

  // is_default tells whether this is the runtime's default group.
  bool is_default() const noexcept { return state_ == nullptr; }
  // policy returns the group's limits (unlimited for the default group). Any thread.
  AEM_EXPORT const Policy& policy() const noexcept;
  // stats returns what the group holds now (all zero for the default group). Any thread.
  AEM_EXPORT GroupStats stats() const noexcept;
  // cancelled tells whether cancel() was called.
  AEM_EXPORT bool cancelled() const noexcept;

  // cancel cancels every registration of the group on every core (as aem::cancel: queued
  // activations are dropped, running handlers finish) and closes the group: a registration or
  // spawn in it from then on fails with errc::cancelled. Capsules of the group keep running.
  // Returns how many registrations it cancelled. Each core scans its own event table (a cost
  // in proportion to the core's registrations), so it is meant for tearing a group down, not
  // for a hot path. Call from a capsule of the group's runtime (from an inline handler only on
  // a single-core runtime).
  // Errors: errc::invalid_argument (the default group, or a group of another runtime),
  // errc::not_in_capsule, errc::inline_handler_blocked, errc::shutting_down.
  AEM_EXPORT Result<std::size_t> cancel() const;

  friend bool operator==(const EventGroup& a, const EventGroup& b) noexcept { return a.state_ == b.state_; }

  // Internal: adopts a reference the caller owns.
  explicit EventGroup(detail::GroupState* adopted) noexcept : state_(adopted) {}
  detail::GroupState* state() const noexcept { return state_; }

 private:
  detail::GroupState* state_ = nullptr;
};

// SpawnGroup says which group a spawned capsule joins (SpawnOptions::group): its parent's
// (the default), a fresh unlimited one, or a given group.
//
// Example:
//   aem::spawn(child, {.group = aem::SpawnGroup::fresh()});   // a new list of events
//   aem::spawn(child, {.group = session});                     // the group `session`
class SpawnGroup {
 public:
  enum class Mode : std::uint8_t { inherit, fresh, given };

  SpawnGroup() noexcept = default;
  SpawnGroup(EventGroup group) noexcept : mode_(Mode::given), group_(std::move(group)) {}  // NOLINT: implicit by design
  static SpawnGroup inherit() noexcept { return SpawnGroup(); }
  static SpawnGroup fresh() noexcept {
    SpawnGroup spawn_group;
    spawn_group.mode_ = Mode::fresh;
    return spawn_group;
  }

  Mode mode() const noexcept { return mode_; }
  const EventGroup& group() const noexcept { return group_; }

 private:
  Mode mode_ = Mode::inherit;
  EventGroup group_;
};

namespace this_capsule {

// group returns the group of the calling capsule, or of the inline handler that calls it (its
// registration's); the default group on a plain thread.
AEM_EXPORT EventGroup group();

}  // namespace this_capsule
}  // namespace aem
