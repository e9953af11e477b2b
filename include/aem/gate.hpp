// gate.hpp — aem::Gate: a graceful drain. Work in flight (a connection, a request) holds a
// Gate::Pass; close() stops new work (refuses passes, stops the listeners), drain() lets the
// holders finish up to a deadline and then cancels the sockets of those that did not.
#pragma once

#include <aem/detail/waiter.hpp>
#include <aem/event_id.hpp>
#include <aem/export.hpp>
#include <aem/net/listener.hpp>
#include <aem/net/stream.hpp>
#include <aem/result.hpp>
#include <aem/time.hpp>
#include <aem/wait_group.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <new>
#include <utility>
#include <vector>

namespace aem {

// DrainReport says how a Gate::drain went.
struct DrainReport {
  std::size_t finished = 0;   // passes held when the gate closed that were given back by the deadline
  std::size_t cancelled = 0;  // passes still held at the deadline whose socket was cancelled
  std::size_t remaining = 0;  // passes still held when drain returned (see Gate::drain)
};

// Gate tracks work in flight so that a server can stop gracefully: stop accepting, let what it
// has taken finish until a deadline, then cancel the rest.
//
// Each unit of work holds a Pass from enter(); the pass is given back when it is destroyed.
// A pass may name the stream it serves (enter(stream)); then the gate can end that stream's
// work from outside:
//   - a pass is *busy* from enter() on; its holder marks it idle() while it waits for the next
//     request (a keep-alive connection between requests) and busy() again when one arrives;
//   - close() refuses new passes (errc::shutting_down), closes the listeners and cancels the
//     accept registrations given to close_with(), and shuts down the reading side of every
//     idle stream: its blocked read returns 0, as if the client had closed, while a response
//     can still be written. idle() returns false from then on: the holder ends its connection
//     instead of waiting for another request. Busy passes go on;
//   - drain(deadline, grace) closes the gate and waits until every pass is given back. At the
//     deadline it cancels each stream still held: the call its holder is blocked in returns
//     errc::cancelled, and the holder is expected to end. A holder still there after `grace`
//     (it went on with its stream, or was between two calls at the deadline, which a cancel
//     does not reach) has its stream shut down in both directions, so each of its calls ends
//     at once (a read returns 0, a write fails with std::errc::broken_pipe). A pass without a
//     stream cannot be cancelled: drain reports it as remaining.
// A stream must outlive the pass that names it: declare the pass after the stream.
//
// Any capsule or thread may enter, close and give passes back, on any core; drain waits, so it
// is called from a capsule. All of a gate's operations are safe at once from several cores.
// A closed gate stays closed. Destroying a gate while passes are held is undefined behaviour.
//
// Example (a capsule per connection):
//   aem::Gate gate;
//   gate.close_with(listener);                      // close() ends the accept loop below
//   ... in the accept loop: auto stream = listener.accept(); spawn a capsule that does
//     auto pass = gate.enter(stream);               // after the stream is in its final place
//     if (!pass) return;                            // the server is draining: refuse
//     while (pass->idle()) {                        // false once the gate closes
//       auto n = stream.read(buffer);               // idle: a drain ends this read with 0
//       if (!n || *n == 0) return;
//       pass->busy();                               // a request: a drain lets it finish
//       (void)stream.write_all(reply(buffer, *n));
//     }
//   ... on SIGTERM:
//   auto report = gate.drain(std::chrono::seconds(10));   // report->cancelled: cut off at 10 s
class Gate {
 public:
  class Pass;

  Gate() noexcept = default;
  Gate(const Gate&) = delete;
  Gate& operator=(const Gate&) = delete;
  ~Gate() = default;

  // enter admits one unit of work that the gate cannot cancel (drain waits for it and reports
  // it as remaining if it is still held after the deadline). Any capsule or thread.
  // Errors: errc::shutting_down once the gate is closed.
  AEM_EXPORT Result<Pass> enter();

  // enter admits the work that serves `stream` (busy, see the top of this file): close()
  // shuts the stream's reading side down while the pass is idle, drain cancels it at its
  // deadline. `stream` must outlive the pass. Any capsule or thread.
  // Errors: errc::shutting_down once the gate is closed.
  AEM_EXPORT Result<Pass> enter(StreamSocket& stream);

  // close_with adds a listener that close() closes (a blocked accept returns errc::cancelled,
  // and later ones fail): how a capsule's accept loop is stopped. The listener must stay alive
  // until the gate is closed. Closing an already closed gate's listener happens at once.
  // Any capsule or thread. Errors: errc::out_of_memory.
  AEM_EXPORT Result<void> close_with(ListenerSocket& listener);

  // close_with adds a registration that close() cancels (aem::cancel): an on_accept
  // registration, so that no connection is taken after the gate closes. A registration given
  // to a closed gate is cancelled at once. Any capsule or thread, but the cancel itself needs a
  // capsule: close() from a plain thread leaves the registration running (cancel it yourself).
  // Errors: errc::out_of_memory.
  AEM_EXPORT Result<void> close_with(EventId registration);

  // close refuses new passes from now on, ends the listeners and registrations given to
  // close_with, and shuts down the reading side of every idle stream (see the top of this file).
  // Returns how many passes are held. Idempotent (a second call only counts). Any capsule or
  // thread (registrations are only cancelled from a capsule).
  AEM_EXPORT std::size_t close() noexcept;

  // drain closes the gate and waits until every pass is given back or `deadline` passes; then
  // it cancels the streams still held, waits up to `grace` more for their holders to give their
  // passes back, and shuts down the streams of those still there (see the top of this file).
  // Returns at once when no pass is held; DrainReport::remaining counts the passes held when
  // it returns (without a stream, or shut down but not given back yet).
  // Call from a capsule. Errors (the gate is then left open): errc::not_in_capsule (a plain
  // thread: run it on a core with Runtime::submit), errc::inline_handler_blocked (an inline
  // handler, which may not wait; counted in its EventInfo::blocked). If the runtime stops while drain waits, the capsule is unwound (as every
  // interruptible wait: docs/shutdown.md).
  AEM_EXPORT Result<DrainReport> drain(Deadline deadline, Duration grace = std::chrono::seconds(1));

  // closed tells whether close() (or drain) was called. Any thread.
  bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }

  // held returns how many passes are held now (a snapshot). Any thread.
  std::size_t held() const noexcept { return static_cast<std::size_t>(held_.count()); }

  // Pass is one admitted unit of work; destroying it gives it back (once). Move-only; a move
  // waits for a drain that is acting on the pass's stream at that moment (a system call).
  class Pass {
   public:
    Pass() noexcept = default;  // holds nothing
    AEM_EXPORT Pass(Pass&& other) noexcept;
    // operator= gives back the pass held (if any) and takes `other`'s place.
    Pass& operator=(Pass&& other) noexcept {
      if (this != &other) {
        leave();
        new (this) Pass(std::move(other));
      }
      return *this;
    }
    Pass(const Pass&) = delete;
    Pass& operator=(const Pass&) = delete;
    ~Pass() { leave(); }

    // idle marks the holder as waiting for its next request: a close() from now on shuts its
    // stream's reading side down. Returns false, and changes nothing, when the gate is closed:
    // the holder should finish its connection rather than wait. Any thread.
    AEM_EXPORT bool idle() noexcept;
    // busy marks the holder as serving a request: close() lets it finish (until the deadline
    // of drain). Any thread.
    AEM_EXPORT void busy() noexcept;
    // closing tells whether the gate has closed: finish the current request and end. Any thread.
    bool closing() const noexcept { return gate_ != nullptr && gate_->closed(); }
    // leave gives the pass back now (the destructor does nothing then). Any thread.
    AEM_EXPORT void leave() noexcept;
    // holds tells whether the pass is still held.
    bool holds() const noexcept { return gate_ != nullptr; }

   private:
    friend class Gate;
    Gate* gate_ = nullptr;
    StreamSocket* stream_ = nullptr;
    Pass* previous_ = nullptr;  // the gate's list of held passes, under its lock
    Pass* next_ = nullptr;
    bool idle_ = false;
    bool cancelled_ = false;  // drain cancelled the stream at its deadline
    std::uint32_t pinned_ = 0;  // a close or drain acts on the stream outside the lock
  };

 private:
  // admit links a new pass for `stream` (may be null) unless the gate is closed.
  Result<Pass> admit(StreamSocket* stream);
  // link / unlink keep the list of held passes; the caller holds lock_.
  void link(Pass& pass) noexcept;
  void unlink(Pass& pass) noexcept;
  // lock_unpinned takes lock_ once no close or drain acts on `pass`'s stream.
  void lock_unpinned(const Pass& pass) noexcept;
  // act_on_streams runs `act` on the stream of every held pass that `select` picks, with the
  // lock released around each call (the pass is pinned: it cannot leave meanwhile); returns
  // how many.
  template <typename Select, typename Act>
  std::size_t act_on_streams(Select select, Act act) noexcept;
  void end_listeners() noexcept;

  mutable detail::SpinLock lock_;  // guards the list, the closers and each pass's fields
  std::atomic<bool> closed_{false};
  Pass* head_ = nullptr;
  WaitGroup held_;  // one count per held pass: what drain waits on
  std::vector<ListenerSocket*> listeners_;
  std::vector<EventId> registrations_;
};

}  // namespace aem
