// Topics: a publisher's events reach another core's subscription in publish order,
// whatever priority their hops to that core would run at.
#include "support/cores.hpp"
#include "support/event_helpers.hpp"

#include <aem/capsule.hpp>
#include <aem/cross_core.hpp>
#include <aem/event.hpp>
#include <aem/runtime.hpp>
#include <aem/topic.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using aem_test::Log;
using aem_test::wait_until;

namespace {

// busy_core_one keeps core 1 from its mailbox until `go` is set: both hops of the test are then
// taken from the mailbox in one pass.
void busy_core_one(std::atomic<bool>& started, std::atomic<bool>& go) {
  REQUIRE(aem::post(1, [&started, &go] {
    started.store(true);
    while (!go.load()) {
    }
  }));
  REQUIRE(wait_until([&] { return started.load(); }));
}

}  // namespace

TEST_CASE("topics: one publisher's events reach another core's subscription in publish order") {
  aem::Runtime rt(aem_test::config_for(2));
  rt.run([] {
    Log log;
    // S gets every topic at its own (normal) priority; T makes "t.hi"'s hop to core 1 critical.
    auto s = aem::submit(1, [&log] {
      return aem::subscribe(aem::TopicFilter::any(), [&log](std::string_view topic, aem::SharedEventData) { log.add(std::string(topic)); },
                            {.exec = aem::Executor::keepalive});
    });
    REQUIRE(s);
    REQUIRE(*s);
    auto t = aem::submit(1, [] {
      return aem::subscribe(aem::TopicFilter::exact("t.hi"), [] {}, {.priority = aem::Priority::critical});
    });
    REQUIRE(t);
    REQUIRE(*t);

    std::atomic<bool> started{false};
    std::atomic<bool> go{false};
    busy_core_one(started, go);
    auto lo = aem::publish("t.lo", {});
    auto hi = aem::publish("t.hi", {});
    go.store(true);
    REQUIRE(lo);
    REQUIRE(hi);
    CHECK(*lo == 1);
    CHECK(*hi == 2);
    REQUIRE(wait_until([&] { return log.snapshot().size() == 2; }));
    CHECK(log.snapshot() == std::vector<std::string>{"t.lo", "t.hi"});
  });
}

TEST_CASE("topics: a hop that finds no free capsule does not overtake an earlier one") {
  aem::Config config = aem_test::config_for(2);
  config.capsules_per_core = 2;
  config.max_capsules = 2;
  aem::Runtime rt(config);
  rt.run([] {
    Log log;
    // An inline subscription: delivered where the hop runs.
    auto s = aem::submit(1, [&log] {
      return aem::subscribe(aem::TopicFilter::any(), [&log](std::string_view topic, aem::SharedEventData) { log.add(std::string(topic)); },
                            {.exec = aem::Executor::inline_handler});
    });
    REQUIRE(s);
    REQUIRE(*s);
    // Core 1 keeps one capsule busy (the spinner, then its sleep) and has one left.
    std::atomic<bool> started{false};
    std::atomic<bool> go{false};
    std::atomic<bool> slept{false};
    REQUIRE(aem::post(1, [&] {
      started.store(true);
      while (!go.load()) {
      }
      aem::this_capsule::sleep_for(50ms);
      slept.store(true);
    }));
    REQUIRE(wait_until([&] { return started.load(); }));
    REQUIRE(aem::publish("first", {}));
    REQUIRE(aem::publish("second", {}));
    go.store(true);
    REQUIRE(wait_until([&] { return log.snapshot().size() == 2; }));
    CHECK(log.snapshot() == std::vector<std::string>{"first", "second"});
    REQUIRE(wait_until([&] { return slept.load(); }));
  });
}
