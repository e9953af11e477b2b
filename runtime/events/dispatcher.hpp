// dispatcher.hpp — the dispatcher of a core's event table (dispatcher.cpp, and group.cpp for
// the Policy counts): from activation to handler. It applies the filter, queues activations
// under their bound (throttling a socket source, or reporting Lost), starts them on their
// executor (a fresh capsule, the registration's keepalive capsule, or inline on the
// dispatcher), holds bursts of fresh-capsule activations back to what the core runs in a turn,
// retries what waits (pending and burst FIFOs), boosts a keepalive capsule by what is queued
// behind it, and counts handlers against Policy::max_active.
//
// The table (event_table.hpp) owns the Dispatcher; its slots, timers, triggers and the socket
// sources (socket_sources.hpp) hand activations to activate().
#pragma once

#include "runtime/sched/core.hpp"

#include <aem/detail/registration.hpp>
#include <aem/event_id.hpp>
#include <aem/metrics.hpp>

#include <array>
#include <cstddef>
#include <cstdint>

namespace aem::detail {

class EventTable;
class SocketSources;
struct CoreTimer;
struct Registration;

// IntrusiveFifo is an intrusive FIFO of nodes linked through next_pending: the pending list and
// the burst lists of a Dispatcher. RegistrationFifo is the one of registrations. (A template so
// that this header needs no complete Registration: its members are built where they are used.)
template <typename Node>
struct IntrusiveFifo {
  Node* head = nullptr;
  Node* tail = nullptr;

  bool empty() const noexcept { return head == nullptr; }
  void push_back(Node* r) noexcept {
    r->next_pending = nullptr;
    if (tail != nullptr) tail->next_pending = r;
    else head = r;
    tail = r;
  }
  Node* pop_front() noexcept {
    Node* r = head;
    head = r->next_pending;
    if (head == nullptr) tail = nullptr;
    return r;
  }
};
using RegistrationFifo = IntrusiveFifo<Registration>;

class Dispatcher {
 public:
  Dispatcher(EventTable& table, SocketSources& sources, Core& core) noexcept;
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // activate hands one activation of `registration` to its executor, or queues it.
  void activate(Registration* registration, Payload& payload) noexcept;
  // kick starts what can start of an enabled registration's queue (enable()).
  void kick(Registration* registration) noexcept;
  // drop counts an activation of `registration` lost before it reached the queue (fan-out
  // ran out of memory sharing the bytes).
  void drop(Registration* registration) noexcept;
  // on_timeout is the timer of a registration's timeout (RegistrationExtras::timeout_timer):
  // it posts a timeout notice to the registration's executor.
  static void on_timeout(CoreTimer* timer) noexcept;

  // has_deferred / run_deferred: activations that wait for a capsule or for the dispatcher
  // (inline handlers): the table's run_deferred runs them (on the dispatcher, not in a capsule).
  bool has_deferred() const noexcept { return !pending_.empty() || burst_listed_ != 0; }
  // bursts_can_go: held-back burst activations wait, and the last pass started some (or a burst
  // was just held): once the launched ones have run, the loop's next turn starts more at once
  // instead of idling first. A pass that found no capsule waits for the idle retry instead.
  bool bursts_can_go() const noexcept { return burst_listed_ != 0 && burst_progress_; }
  void run_deferred() noexcept;

  // note_inline_block tells whether the dispatcher runs an inline handler now, counting one
  // refused suspension if so. Called by the blocking calls when they find no capsule.
  bool note_inline_block() noexcept;
  bool in_inline_handler() const noexcept { return inline_current_ != nullptr; }
  // inline_registration is the registration whose inline handler the dispatcher runs, or nullptr.
  Registration* inline_registration() const noexcept { return inline_current_; }

  // policy_retire gives back a policed registration's counts (group.cpp) as it retires.
  void policy_retire(Registration* registration) noexcept;
  // pending_by_priority counts the activations queued and not started, by the priority they
  // will run at (metrics: computed when a snapshot is taken, not kept up on every queue move).
  void pending_by_priority(std::uint64_t (&counts)[kPriorityLevels]) const noexcept;
  // The counters of this_core::event_stats.
  std::uint64_t inline_blocked() const noexcept { return inline_blocked_; }
  std::uint64_t throttles() const noexcept { return throttles_; }
  std::uint64_t lost() const noexcept { return lost_; }

 private:
  struct Activation;
  void post_notice(Registration* registration, Payload& payload) noexcept;
  bool admit(Registration* registration, Payload& payload) noexcept;
  bool enqueue(Registration* registration, Payload& payload) noexcept;
  Payload take_next(Registration* registration) noexcept;
  // start_activation: see dispatcher.cpp. hold_bursts false launches past burst_full.
  bool start_activation(Registration* registration, Payload* payload, bool hold_bursts = true) noexcept;
  void launch_past_bound(Registration* registration) noexcept;
  void run_inline(Registration* registration, Payload& payload) noexcept;
  void deliver(Registration* registration, Payload& payload) noexcept;
  void invoke_handler(Registration* registration, Payload& payload) noexcept;
  void add_pending(Registration* registration) noexcept;
  void add_burst_held(Registration* registration) noexcept;
  void retry_pending() noexcept;
  void retry_bursts() noexcept;
  void activation_done(Registration* registration) noexcept;
  void throttle(Registration* registration) noexcept;
  void unthrottle(Registration* registration) noexcept;
  void boost_worker(Registration* registration) noexcept;
  static Priority priority_of(const Registration* registration, const Payload& payload) noexcept;
  // Policy (group.cpp), for policed registrations only: policy_enter counts one more handler
  // running, or refuses (max_active reached: start_held_ is set, the activation waits);
  // policy_leave counts it finished.
  bool policy_enter(Registration* registration) noexcept;
  void policy_leave(Registration* registration) noexcept;

  EventTable& table_;
  SocketSources& sources_;
  Core& core_;
  std::uint32_t core_index_;
  RegistrationFifo pending_;
  Registration* inline_current_ = nullptr;  // the inline handler the dispatcher runs
  std::uint64_t inline_blocked_ = 0;
  std::uint64_t throttles_ = 0;
  std::uint64_t lost_ = 0;
  // start_held_: the last start_activation was held back (max_active reached, or a burst
  // waiting to start): retry_pending passes over the registration and tries the others.
  // burst_held_: held back by burst_full in particular.
  bool start_held_ = false;
  bool burst_held_ = false;
  // bursts_: fresh-capsule registrations whose oldest activation waits for a
  // burst to start, one FIFO per priority of that activation (the other deferred ones are on
  // the pending list). burst_full at one level means full at every lower one, so a pass
  // (retry_bursts) goes from the most urgent level down and ends at the first one held: a
  // burst of n held registrations costs O(n) over its turns, not a scan of all n per turn.
  std::array<RegistrationFifo, kPriorityLevels> bursts_{};
  std::size_t burst_listed_ = 0;
  bool burst_progress_ = false;
  // unstarted_ counts fresh-capsule activations launched but not yet running, by priority. A
  // burst takes capsules only as fast as the core runs them (burst_full): pooled capsules come
  // back in time for the rest, instead of one new stack per queued activation. A handler that
  // blocks has started, so blocked handlers never hold the next ones back.
  std::array<std::uint32_t, kPriorityLevels> unstarted_{};
  std::uint32_t unstarted_total_ = 0;
  std::uint32_t burst_bound_;  // Config::run_budget
  // burst_full: see dispatcher.cpp. Inline: every fresh activation asks, and a burst is rare.
  bool burst_full(Priority at) const noexcept {
    return unstarted_total_ >= burst_bound_ && burst_full_at(at);
  }
  bool burst_full_at(Priority at) const noexcept;
};

}  // namespace aem::detail
