// connections.cpp — ConnectionTable, the sweepers and the drain.
#include "connections.hpp"

#include "server.hpp"

#include <aem/capsule.hpp>
#include <aem/cross_core.hpp>
#include <aem/timer.hpp>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <type_traits>

namespace http {

void ConnectionTable::link(ConnectionRecord& record) noexcept {
  record.table = this;
  record.previous = nullptr;
  record.next = head_;
  if (head_ != nullptr) head_->previous = &record;
  head_ = &record;
  ++size_;
}

void ConnectionTable::unlink(ConnectionRecord& record) noexcept {
  ConnectionTable& table = *record.table;
  if (record.previous != nullptr) record.previous->next = record.next;
  else table.head_ = record.next;
  if (record.next != nullptr) record.next->previous = record.previous;
  record.previous = record.next = nullptr;
  record.table = nullptr;
  --table.size_;
}

std::size_t ConnectionTable::sweep(aem::TimePoint now) noexcept {
  std::size_t expired = 0;
  for (ConnectionRecord* record = head_; record != nullptr; record = record->next) {
    if (record->deadline >= now) continue;
    // Shutting down both directions ends a blocked read (it returns 0) and a blocked write
    // (broken pipe); the connection's own code then closes it. Once is enough.
    record->deadline = aem::TimePoint::max();
    (void)record->stream->shutdown(aem::Shutdown::both);
    ++expired;
  }
  return expired;
}

void ConnectionTable::drain() noexcept {
  for (ConnectionRecord* record = head_; record != nullptr; record = record->next) {
    if (record->phase == Phase::idle) (void)record->stream->shutdown(aem::Shutdown::read);
  }
}

aem::TimePoint coarse_now() noexcept {
  // aem::Clock is std::chrono::steady_clock, which reads CLOCK_MONOTONIC: the coarse variant
  // counts from the same origin.
  static_assert(std::is_same_v<aem::Clock, std::chrono::steady_clock>);
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
  return aem::TimePoint(std::chrono::duration_cast<aem::Duration>(std::chrono::seconds(now.tv_sec) +
                                                                  std::chrono::nanoseconds(now.tv_nsec)));
}

ConnectionTable& this_core_connections() noexcept {
  thread_local ConnectionTable table;  // a capsule never leaves its core: one table per core
  return table;
}

aem::Result<void> start_sweepers(Server& server, aem::Duration period) {
  for (unsigned core = 0; core < aem::this_core::count(); ++core) {
    aem::Result<aem::Result<aem::EventId>> armed = aem::submit(core, [&server, period] {
      return aem::every(period, [&server] {
        const std::size_t expired = this_core_connections().sweep(aem::Clock::now());
        if (expired > 0) server.timed_out.fetch_add(expired, std::memory_order_relaxed);
      });
    });
    if (!armed) return armed.error();
    if (!*armed) return armed->error();
  }
  return {};
}

void drain_all_cores() {
  for (unsigned core = 0; core < aem::this_core::count(); ++core) {
    if (auto done = aem::submit(core, [] { this_core_connections().drain(); }); !done) {
      std::fprintf(stderr, "http_server: drain of core %u: %s\n", core, done.error().message().c_str());
    }
  }
}

}  // namespace http
