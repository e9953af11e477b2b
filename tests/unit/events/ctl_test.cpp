// aem::ctl on every kind of registration: stale and foreign ids, disable / enable, filters,
// timeouts, hot handler replacement, the queue bound and Lost, info — from the registration's
// core and from another.
#include "support/cores.hpp"
#include "support/event_helpers.hpp"

#include <aem/capsule.hpp>
#include <aem/cross_core.hpp>
#include <aem/event.hpp>
#include <aem/runtime.hpp>
#include <aem/timer.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using aem_test::data_of;
using aem_test::Log;
using aem_test::on_core;
using aem_test::text_of;
using aem_test::wait_until;

namespace {

constexpr unsigned kCtlCores[] = {1, 2};


void check_rejected(aem::EventId id, aem::errc want) {
  CAPTURE(id.value());
  const aem::EventControl c = aem::ctl(id);
  CHECK(c.enable().error() == want);
  CHECK(c.disable().error() == want);
  CHECK(c.set_priority(aem::Priority::high).error() == want);
  CHECK(c.set_filter([](const aem::ActivationView&) { return true; }).error() == want);
  CHECK(c.set_timeout(1ms, [] {}).error() == want);
  CHECK(c.replace_handler([](aem::EventData) {}).error() == want);
  CHECK(c.info().error() == want);
  CHECK(c.cancel().error() == want);
  CHECK(aem::trigger(id).error() == want);
  CHECK(aem::cancel(id).error() == want);
}

}  // namespace

TEST_CASE("events: stale and foreign ids are rejected by every ctl operation") {
  aem::EventId from_other_runtime;
  {
    aem::Runtime other(aem_test::config_for(1));
    from_other_runtime = other.run([] { return *aem::on_event([] {}); });
  }
  for (unsigned cores : kCtlCores) {
    CAPTURE(cores);
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([&] {
      const unsigned home = cores - 1;
      // Cancelled: stale, on its own core and from another.
      const aem::EventId cancelled = on_core(home, [] { return aem::on_event([](aem::EventData) {}); });
      REQUIRE(aem::ctl(cancelled).cancel());
      check_rejected(cancelled, aem::errc::stale_event_id);
      // The slot is reused under a new generation: the old id still names nothing.
      const aem::EventId reused = on_core(home, [] { return aem::on_event([](aem::EventData) {}); });
      CHECK(reused.slot() == cancelled.slot());
      check_rejected(cancelled, aem::errc::stale_event_id);
      CHECK(aem::ctl(reused).info());
      // A one-shot timer that fired is over.
      std::atomic<bool> fired{false};
      const aem::EventId timer = on_core(home, [&] { return aem::after(0ms, [&] { fired = true; }); });
      REQUIRE(wait_until([&] { return fired.load(); }));
      REQUIRE(wait_until([&] { return !aem::ctl(timer).info(); }));
      check_rejected(timer, aem::errc::stale_event_id);
      // Foreign: invalid, another runtime's, a core this runtime does not have.
      check_rejected(aem::EventId{}, aem::errc::foreign_event_id);
      check_rejected(from_other_runtime, aem::errc::foreign_event_id);
      check_rejected(aem::EventId(reused.tag(), cores, reused.generation(), reused.slot()), aem::errc::foreign_event_id);
      // Valid ids, wrong use.
      CHECK(aem::ctl(reused).set_priority(aem::Priority{8}).error() == aem::errc::invalid_argument);
      CHECK(aem::ctl(reused).replace_handler([](aem::SocketState) {}).error() == aem::errc::invalid_argument);
      const aem::EventId periodic = on_core(home, [] { return aem::every(1h, [] {}); });
      CHECK(aem::trigger(periodic).error() == aem::errc::invalid_argument);
      CHECK(aem::ctl(periodic).replace_handler([](aem::EventData) {}).error() == aem::errc::invalid_argument);
      CHECK(aem::ctl(periodic).replace_handler([] {}));
      CHECK(aem::ctl(periodic).cancel());
      CHECK(aem::ctl(reused).cancel());
    });
    CHECK(aem::ctl(aem::EventId{}).info().error() == aem::errc::not_in_capsule);
  }
}

TEST_CASE("events: a disabled registration queues its activations and delivers them, in order, on enable") {
  for (aem::Executor exec : {aem::Executor::fresh_capsule, aem::Executor::keepalive, aem::Executor::inline_handler}) {
    for (unsigned cores : kCtlCores) {
      CAPTURE(static_cast<int>(exec));
      CAPTURE(cores);
      aem::Runtime rt(aem_test::config_for(cores));
      rt.run([&] {
        Log log;
        const aem::EventId id = on_core(cores - 1, [&] {
          return aem::on_event([&](aem::EventData d) { log.add(text_of(d)); }, {.exec = exec});
        });
        REQUIRE(aem::ctl(id).disable());
        for (const char* text : {"a", "b", "c"}) REQUIRE(aem::trigger(id, data_of(text)));
        auto info = aem::ctl(id).info();
        REQUIRE(info);
        CHECK(info->state == aem::EventState::disabled);
        CHECK(info->activated == 3);
        CHECK(info->queued == 3);
        CHECK(info->delivered == 0);
        aem::this_capsule::sleep_for(2ms);
        CHECK(log.size() == 0);  // nothing starts while disabled
        REQUIRE(aem::ctl(id).enable());
        REQUIRE(wait_until([&] { return log.size() == 3; }));
        CHECK(log.snapshot() == std::vector<std::string>{"a", "b", "c"});
        info = aem::ctl(id).info();
        REQUIRE(info);
        CHECK(info->state == aem::EventState::active);
        CHECK(info->delivered == 3);
        CHECK(info->queued == 0);
        CHECK(info->exec == exec);
        CHECK(info->source == aem::SourceType::user);
        CHECK(info->core == cores - 1);
        CHECK(aem::ctl(id).cancel());
      });
    }
  }
}

TEST_CASE("events: a filter drops activations and counts them: removing it lets them through") {
  for (unsigned cores : kCtlCores) {
    CAPTURE(cores);
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([&] {
      Log log;
      const aem::EventId id = on_core(cores - 1, [&] {
        return aem::on_event([&](aem::EventData d) { log.add(text_of(d)); }, {.exec = aem::Executor::keepalive});
      });
      REQUIRE(aem::ctl(id).set_filter([](const aem::ActivationView& view) {
        return !view.data.empty() && static_cast<char>(view.data[0]) == 'k';
      }));
      for (const char* text : {"keep1", "drop1", "keep2", "drop2"}) REQUIRE(aem::trigger(id, data_of(text)));
      REQUIRE(wait_until([&] { return log.size() == 2; }));
      REQUIRE(aem::ctl(id).set_filter({}));
      REQUIRE(aem::trigger(id, data_of("drop3")));
      REQUIRE(wait_until([&] { return log.size() == 3; }));
      CHECK(log.snapshot() == std::vector<std::string>{"keep1", "keep2", "drop3"});
      auto info = aem::ctl(id).info();
      REQUIRE(info);
      CHECK(info->activated == 5);
      CHECK(info->filtered == 2);
      CHECK(info->delivered == 3);
    });
  }
}

TEST_CASE("events: a timeout fires while the registration is silent, and stops when removed") {
  for (unsigned cores : kCtlCores) {
    CAPTURE(cores);
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([&] {
      std::atomic<int> timeouts{0};
      std::atomic<int> activations{0};
      const aem::EventId id = on_core(cores - 1, [&] {
        return aem::on_event([&] { activations.fetch_add(1); }, {.exec = aem::Executor::keepalive});
      });
      REQUIRE(aem::ctl(id).set_timeout(3ms, [&] { timeouts.fetch_add(1); }));
      REQUIRE(wait_until([&] { return timeouts.load() >= 2; }));
      REQUIRE(aem::trigger(id));
      REQUIRE(wait_until([&] { return activations.load() == 1; }));
      REQUIRE(aem::ctl(id).set_timeout(0ms, [] {}));
      aem::this_capsule::sleep_for(1ms);  // a timeout queued before the removal may still run
      const int at_removal = timeouts.load();
      aem::this_capsule::sleep_for(15ms);
      CHECK(timeouts.load() == at_removal);
      // A timer's registration has a timeout too (any source).
      std::atomic<int> timer_timeouts{0};
      const aem::EventId timer = on_core(cores - 1, [] { return aem::every(1h, [] {}); });
      REQUIRE(aem::ctl(timer).set_timeout(2ms, [&] { timer_timeouts.fetch_add(1); }));
      REQUIRE(wait_until([&] { return timer_timeouts.load() >= 1; }));
      CHECK(aem::ctl(timer).cancel());
    });
  }
}

TEST_CASE("events: replace_handler under a stream of activations — each handled exactly once") {
  for (unsigned cores : kCtlCores) {
    CAPTURE(cores);
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([&] {
      constexpr int kActivations = 3000;
      constexpr int kReplaceAt = 1000;
      std::mutex mutex;
      std::map<int, int> seen;  // activation -> times handled
      std::atomic<int> by_old{0};
      std::atomic<int> by_new{0};
      auto old_alive = std::make_shared<int>(0);
      auto record = [&](const aem::EventData& d, std::atomic<int>& by) {
        std::lock_guard lock(mutex);
        ++seen[std::stoi(text_of(d))];
        by.fetch_add(1);
      };
      const aem::EventId id = on_core(cores - 1, [&, token = old_alive] {
        return aem::on_event(
            [&, token](aem::EventData d) {
              record(d, by_old);
              if (by_old.load() % 7 == 0) aem::this_capsule::yield();  // often in flight at the swap
            },
            {.exec = aem::Executor::keepalive, .queue_bound = kActivations});
      });
      for (int i = 0; i < kActivations; ++i) {
        if (i == kReplaceAt) {
          REQUIRE(aem::ctl(id).replace_handler([&](aem::EventData d) { record(d, by_new); }));
        }
        REQUIRE(aem::trigger(id, data_of(std::to_string(i))));
      }
      REQUIRE(wait_until([&] { return by_old.load() + by_new.load() == kActivations; }));
      std::lock_guard lock(mutex);
      CHECK(seen.size() == kActivations);
      bool once_each = true;
      for (const auto& [activation, times] : seen) once_each = once_each && times == 1;
      CHECK(once_each);
      CHECK(by_new.load() >= kActivations - kReplaceAt);  // everything triggered after the swap
      CHECK(by_old.load() + by_new.load() == kActivations);
      // The old handler (and the token it captured) is gone once nothing runs it.
      CHECK(wait_until([&] { return old_alive.use_count() == 1; }));
      CHECK(aem::ctl(id).info()->lost == 0);
    });
  }
}

TEST_CASE("events: an activation in flight finishes on the old handler, destroyed after it") {
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([] {
    std::atomic<bool> in_old{false};
    std::atomic<bool> swapped{false};
    Log log;
    auto old_alive = std::make_shared<std::string>("old");
    auto id = aem::on_event(
        [&, token = old_alive](aem::EventData d) {
          in_old = true;
          while (!swapped.load()) aem::this_capsule::sleep_for(1ms);
          log.add(*token + ":" + text_of(d));  // its captures are alive after the swap
        },
        {.exec = aem::Executor::fresh_capsule});
    REQUIRE(id);
    REQUIRE(aem::trigger(*id, data_of("1")));
    REQUIRE(wait_until([&] { return in_old.load(); }));
    REQUIRE(aem::ctl(*id).replace_handler([&](aem::EventData d) { log.add("new:" + text_of(d)); }));
    CHECK(old_alive.use_count() == 2);  // still held: an activation runs it
    REQUIRE(aem::trigger(*id, data_of("2")));
    REQUIRE(wait_until([&] { return log.size() == 1; }));
    swapped = true;
    REQUIRE(wait_until([&] { return log.size() == 2; }));
    CHECK(log.snapshot() == std::vector<std::string>{"new:2", "old:1"});
    CHECK(wait_until([&] { return old_alive.use_count() == 1; }));
    CHECK(aem::ctl(*id).cancel());
  });
}

TEST_CASE("events: beyond the queue bound a trigger is lost, and on_lost hears how many, in order") {
  for (unsigned cores : kCtlCores) {
    CAPTURE(cores);
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([&] {
      Log log;
      const aem::EventId id = on_core(cores - 1, [&] {
        return aem::on_event([&](aem::EventData d) { log.add(text_of(d)); },
                             {.exec = aem::Executor::keepalive,
                              .queue_bound = 4,
                              .on_lost = [&](aem::Lost lost) { log.add("lost " + std::to_string(lost.count)); }});
      });
      REQUIRE(aem::ctl(id).disable());
      for (int i = 0; i < 10; ++i) REQUIRE(aem::trigger(id, data_of(std::to_string(i))));  // never refused
      auto info = aem::ctl(id).info();
      REQUIRE(info);
      CHECK(info->queued == 4);
      CHECK(info->lost == 6);
      CHECK(info->activated == 10);
      REQUIRE(aem::ctl(id).enable());
      REQUIRE(wait_until([&] { return log.size() == 5; }));
      CHECK(log.snapshot() == std::vector<std::string>{"0", "1", "2", "3", "lost 6"});
      REQUIRE(aem::trigger(id, data_of("10")));
      REQUIRE(wait_until([&] { return log.size() == 6; }));
      CHECK(log.snapshot().back() == "10");
      auto lost_on_core = aem::submit(cores - 1, [] { return aem::this_core::event_stats().lost; });
      REQUIRE(lost_on_core);
      CHECK(*lost_on_core == 6);
    });
  }
}
