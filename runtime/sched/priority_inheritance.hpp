// priority_inheritance.hpp — how aem::Mutex lends a waiter's priority to the capsule holding it
// (CGL 3.2.2: a capsule's priority follows what is pending on it).
//
// Every function runs on the calling capsule's own core and changes only capsules of that core:
// priorities order one core's ready queue, and a capsule of the caller's core does not run
// while the caller does, so its fields (priority, held_mutexes, blocked_on) can be read and
// changed without atomics. A Mutex's own fields are read under its SpinLock. A holder on
// another core is lent to by a note through that core's mailbox (kMailLend), which its core
// applies if the holder still holds the mutex; a waiter that gives up sends kMailTakeBack.
// The lent priority of a waiter on another core is the one it had when it blocked.
#pragma once

#include "runtime/sched/capsule_control.hpp"

#include <aem/mutex.hpp>
#include <aem/priority.hpp>

namespace aem::detail {

struct PriorityInheritance {
  // kMaxChain bounds the walk along "holds a mutex that X waits for" links (a cycle is a
  // deadlock of the application; the bound keeps it from becoming a hang of the core).
  static constexpr unsigned kMaxChain = 16;

  // held records that the running capsule `self` has just taken `mutex` without waiting.
  static void held(CapsuleControl& self, Mutex& mutex) noexcept;

  // blocked records that `self` is about to wait for `mutex`, which `holder` (read under the
  // mutex's SpinLock; nullptr for a plain thread) holds, and raises the holder — and the holder
  // of the mutex the holder waits for, and so on — to at least self's priority.
  static void blocked(CapsuleControl& self, Mutex& mutex, void* holder) noexcept;

  // unblocked ends the wait that blocked() began. `owned`: the mutex was handed to `self`,
  // which then inherits from the waiters still queued behind it. Otherwise `self` gave up
  // (deadline, shutdown) and the current holder drops what it had inherited from `self`.
  static void unblocked(CapsuleControl& self, Mutex& mutex, bool owned) noexcept;

  // released unlinks `mutex` from the mutexes `self` holds. Call before the mutex is handed
  // on: its link belongs to the next owner from then on.
  static void released(CapsuleControl& self, Mutex& mutex) noexcept;

  // inherited returns the highest priority among the waiters queued on the mutexes `capsule`
  // holds (Priority::idle if none).
  static Priority inherited(const CapsuleControl& capsule) noexcept;

  // arrived applies a kMailLend / kMailTakeBack note on the holder's core (Core::drain_mail)
  // and frees it.
  static void arrived(Core& core, MailNode* note) noexcept;

 private:
  // top_waiter returns the highest priority `mutex`'s waiters lend (idle if none): a waiter of
  // `core` its priority now, one of another core what it lent when it blocked.
  static Priority top_waiter(Mutex& mutex, const Core* core) noexcept;
  // lend raises `next`, which holds `via`, to at least `lent`, and so on down the chain of
  // mutexes the holders wait for; a holder on another core gets a note. Runs on `core`.
  static void lend(Core& core, CapsuleControl* next, Mutex* via, Priority lent, unsigned depth) noexcept;
  // held_by tells whether `capsule` (of the calling core) holds `mutex`, comparing addresses.
  static bool held_by(const CapsuleControl& capsule, const Mutex* mutex) noexcept;
  // post sends a note of `kind` about `holder` to its core. Best effort: without memory for
  // the note the holder is not raised (the mutex still works).
  static void post(MailKind kind, CapsuleControl* holder, Mutex* via, Priority lent, unsigned depth) noexcept;
};

}  // namespace aem::detail
