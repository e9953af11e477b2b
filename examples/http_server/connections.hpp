// connections.hpp — the connections of one core, for the two things that must reach every
// connection from outside its own handler: timeouts and the drain of a graceful shutdown.
//
// A connection is either running its handler or blocked (in a read, a write, or between
// on_data activations). Before blocking it stores the deadline of what it waits for; a sweeper
// on each core (one periodic timer registration) shuts down the socket of every connection
// whose deadline has passed, which ends the blocked read or write. So a slow or silent client
// costs no timer operation per request, only a store.
#pragma once

#include <aem/net/stream.hpp>
#include <aem/result.hpp>
#include <aem/time.hpp>

#include <cstddef>
#include <cstdint>

namespace http {

struct Server;

// Phase says what a connection is waiting for.
enum class Phase : std::uint8_t {
  idle,       // between requests: a drain may close it at once
  receiving,  // in the middle of a request
  sending,    // writing a response
  lingering,  // answered its last request, reading what is left before closing
};

class ConnectionTable;

// ConnectionRecord is one connection's entry in its core's ConnectionTable.
struct ConnectionRecord {
  ConnectionTable* table = nullptr;  // where it is linked: unlinking must not depend on the thread
  aem::StreamSocket* stream = nullptr;
  Phase phase = Phase::idle;
  aem::TimePoint deadline = aem::TimePoint::max();
  ConnectionRecord* previous = nullptr;
  ConnectionRecord* next = nullptr;
};

// ConnectionTable lists the connections of the calling core. Core-local: use it only from
// capsules of the core it belongs to.
class ConnectionTable {
 public:
  void link(ConnectionRecord& record) noexcept;
  // unlink removes `record` from the table it was linked to (ConnectionRecord::table).
  static void unlink(ConnectionRecord& record) noexcept;
  // sweep shuts down the socket of every connection whose deadline is before `now`; returns
  // how many.
  std::size_t sweep(aem::TimePoint now) noexcept;
  // drain ends the idle connections by shutting down their reading side (a response can still
  // go out if their request raced the drain); the others end after their current request.
  void drain() noexcept;
  std::size_t size() const noexcept { return size_; }

 private:
  ConnectionRecord* head_ = nullptr;
  std::size_t size_ = 0;
};

// coarse_now returns aem::Clock::now() as of the kernel's last clock tick (a few ms behind at
// most, never ahead), read without the precise clock's cost. Enough for the deadlines above:
// the sweeper checks them only once a sweep period (10 ms or more), and reading it several
// times per request costs less than one precise read. Any thread.
aem::TimePoint coarse_now() noexcept;

// this_core_connections returns the calling core's table.
ConnectionTable& this_core_connections() noexcept;

// start_sweepers registers a sweep of every core's table each `period` (on each core, from the
// calling capsule). The registrations end with the runtime. Errors: as aem::every or aem::submit.
aem::Result<void> start_sweepers(Server& server, aem::Duration period);

// drain_all_cores runs ConnectionTable::drain on every core and returns when each has.
void drain_all_cores();

}  // namespace http
