// executor.hpp — how a registration's activations run, how many may wait, and what a
// registration is told when some could not wait.
#pragma once

#include <cstdint>

namespace aem {

// Executor says which capsule runs a registration's activations.
enum class Executor : std::uint8_t {
  // fresh_capsule: each activation runs in its own capsule from the core's pool, so activations
  // of one registration may overlap when a handler blocks. A burst takes capsules only as fast
  // as the core runs them: once Config::run_budget activations of the same or higher priority
  // wait to start, the next waits in the registration's queue for a later turn, so the pool's
  // own capsules come back to serve it and a flood of quick handlers maps no new stacks. A
  // handler that blocks has started and holds nothing back; a queue at its bound starts its
  // oldest activations at once (growing the pool) rather than lose one.
  fresh_capsule,
  // keepalive: one capsule per registration runs its activations one after another, in order
  // (AEM's atomicity: never two handlers of the same registration at once). The capsule is
  // kept while activations are queued and goes back to the pool when none is, so an idle
  // registration holds no stack. While higher-priority activations wait behind the one it
  // runs, the capsule runs at their priority, so they are not held up behind a less urgent one.
  keepalive,
  // inline_handler: the handler runs on the core's dispatcher itself, as soon as the event is
  // activated — no capsule, no switch — for handlers declared non-blocking. Such a handler may
  // compute, allocate event data, register, trigger, cancel and control registrations of its
  // own core, and start capsules (spawn, post); it may not suspend: no I/O wait (fd or
  // socket), sleep, yield, join, submit, mutex, condition variable, semaphore, channel or
  // wait-group wait. Each such call is refused with errc::inline_handler_blocked, whatever the
  // state (a free mutex too): returned by the calls that return a Result (the deadline forms,
  // Channel send/receive, fd and socket I/O, submit), thrown as std::system_error by the others
  // (lock(), acquire(), wait(), sleep, join); yield returns at once. Each refusal is counted in
  // EventInfo::blocked and this_core::event_stats(). Activations that arrive while a capsule
  // runs (a trigger from a capsule) wait for the dispatcher's next turn. One at a time, in
  // order, like keepalive.
  inline_handler,
};

// kDefaultQueueBound is the default number of activations one registration keeps waiting
// (not started yet: disabled, its keepalive capsule busy, a fresh-capsule burst, or no capsule
// free).
inline constexpr std::uint32_t kDefaultQueueBound = 1024;

// Lost tells a registration that `count` of its activations were dropped: its queue was at its
// bound (or memory for the queue ran out) and the source cannot wait (timers, triggered
// events). Delivered in order, where the dropped activations would have been.
struct Lost {
  std::uint64_t count = 0;
};

}  // namespace aem
