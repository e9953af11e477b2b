// EventInfo's counts add up: every activation that reached a registration is delivered,
// waiting, filtered or lost — exactly one of them, at every moment, a snapshot taken by the
// handler that serves an activation included.
#include "support/cores.hpp"
#include "support/event_helpers.hpp"

#include <aem/capsule.hpp>
#include <aem/event.hpp>
#include <aem/runtime.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using aem_test::wait_until;

namespace {

// Snapshot is what a handler saw of its own registration.
struct Snapshot {
  std::uint64_t activated, delivered, queued, filtered, lost;
  std::uint32_t running;
};

Snapshot snapshot(aem::EventId id) {
  auto info = aem::ctl(id).info();
  REQUIRE(info);
  return {info->activated, info->delivered, info->queued, info->filtered, info->lost, info->running};
}

void check_adds_up(const Snapshot& s) {
  CAPTURE(s.activated);
  CAPTURE(s.delivered);
  CAPTURE(s.queued);
  CAPTURE(s.filtered);
  CAPTURE(s.lost);
  CHECK(s.delivered + s.queued + s.filtered + s.lost == s.activated);
}

}  // namespace

TEST_CASE("events: EventInfo counts add up to activated, also in a snapshot from the serving handler") {
  for (aem::Executor exec : {aem::Executor::keepalive, aem::Executor::fresh_capsule, aem::Executor::inline_handler}) {
    CAPTURE(static_cast<int>(exec));
    aem::Runtime rt(aem_test::config_for(1));
    rt.run([exec] {
      constexpr int kTriggers = 6;
      std::vector<Snapshot> seen;
      aem::EventId self;
      auto id = aem::on_event([&] { seen.push_back(snapshot(self)); },
                              {.exec = exec, .queue_bound = 3, .on_lost = [](aem::Lost) {}});
      REQUIRE(id);
      self = *id;
      REQUIRE(aem::ctl(self).set_filter([n = 0](const aem::ActivationView&) mutable { return ++n != 2; }));
      for (int i = 0; i < kTriggers; ++i) (void)aem::trigger(self);
      check_adds_up(snapshot(self));  // before any handler ran
      REQUIRE(wait_until([&] {
        const Snapshot s = snapshot(self);
        return s.queued == 0 && s.running == 0;
      }));
      const Snapshot last = snapshot(self);
      check_adds_up(last);
      CHECK(last.activated == kTriggers);
      CHECK(last.filtered == 1);
      CHECK(last.delivered == seen.size());
      REQUIRE_FALSE(seen.empty());
      for (const Snapshot& s : seen) check_adds_up(s);
    });
  }
}
