// capsule_control.hpp — the control block of one pooled capsule. It lives at the top of the
// capsule's own stack mapping, so spawning touches memory that is already mapped and warm.
#pragma once

#include "runtime/sched/timer_wheel.hpp"
#include "runtime/fiber/context.hpp"
#include "runtime/fiber/stack.hpp"

#include <aem/capsule.hpp>
#include <aem/detail/mail_node.hpp>
#include <aem/detail/task.hpp>
#include <aem/detail/wait_note.hpp>
#include <aem/detail/waiter.hpp>

#include <cstddef>
#include <cstdint>
#include <atomic>

namespace aem {
class Mutex;
}

namespace aem::detail {

class Core;

// CoreTimer is a timer wheel node with something to do when it fires (node first, so the
// wheel's TimerNode* converts back).
struct CoreTimer {
  TimerNode node;
  void (*fire)(CoreTimer* self) noexcept = nullptr;
  void* owner = nullptr;
};

// g_diag_clock_ns is the steady clock in nanoseconds as the diagnostics last read it (the stall
// watchdog every tick, a dump before it asks): a capsule's birth time for the dump's "age",
// stamped by every spawn for the price of one load (reading the clock would cost more than
// the rest of a spawn). 0 while no watchdog runs.
inline std::atomic<std::int64_t> g_diag_clock_ns{0};

enum class CapsuleState : std::uint8_t { pooled, ready, running, suspended, finished };

// MailKind says what a MailNode delivered to a core's mailbox asks for.
enum MailKind : std::uint8_t {
  kMailWake = 1,     // owner: CapsuleControl to make ready
  kMailRecycle = 2,  // owner: CapsuleControl whose handle was dropped on another core
  kMailSpawn = 3,    // owner: TaskState to run in a fresh capsule
  kMailLend = 4,     // owner: LendNote (priority_inheritance.cpp): a waiter's priority to lend
  kMailTakeBack = 5, // owner: LendNote: a waiter gave up, the holder recomputes its priority
  kMailRun = 6,      // owner: TaskState that never suspends, run on the dispatcher as it arrives
};

// kFrameBytes of each capsule's control block hold its task (callable + result) when they
// fit, so a local spawn allocates nothing.
inline constexpr std::size_t kFrameBytes = 448;

struct CapsuleControl {
  Context context;
  CapsuleControl* ready_next = nullptr;  // ready queue or pool free list
  // priority is the effective priority, the one the ready queue orders by: base_priority, or
  // higher while a capsule of the same core waits for a Mutex this one holds (inheritance) or
  // while it owes more urgent queued activations (owed).
  Priority priority = Priority::normal;
  CapsuleState state = CapsuleState::pooled;
  Priority base_priority = Priority::normal;  // its own: spawn's, or this_capsule::set_priority's
  // owed: a keepalive capsule runs at least at the most urgent activation queued behind the
  // one it serves; kept apart from base_priority so a mutex's restore keeps it.
  Priority owed = Priority::idle;
  Core* core = nullptr;
  TaskState* task = nullptr;
  Waiter* waiter = nullptr;  // the interruptible wait it is suspended in, if any
  CoreTimer timer;           // that wait's deadline
  MailNode mail;
  StackMapping stack;
  GuardWatch guard;  // guard.capsule_id is the capsule's id (this_capsule::id)
  CapsuleControl* all_next = nullptr;  // every capsule of the core, for teardown
  // Priority inheritance (priority_inheritance.cpp), touched only on the capsule's
  // core: the mutexes it holds (linked through the Mutex) and the one it waits for.
  Mutex* held_mutexes = nullptr;
  Mutex* blocked_on = nullptr;
  // Diagnostics (runtime/diag, gdb/aem.py): where it was spawned (nullptr: unknown), about
  // when (g_diag_clock_ns), and what it waits for while suspended (note_wait).
  const SiteRecord* site = nullptr;
  std::int64_t spawned_ns = 0;
  const void* wait_object = nullptr;
  std::intptr_t wait_arg = 0;
  WaitKind wait_kind = WaitKind::none;
  alignas(std::max_align_t) unsigned char frame[kFrameBytes];
};

}  // namespace aem::detail
