// Executors and priorities of activations: priority order and FIFO within a level, the boost of
// a keepalive capsule by the activations queued behind it, and inline handlers (run on the
// dispatcher; a suspension there is refused and counted, never a deadlock).
#include "support/cores.hpp"
#include "support/event_helpers.hpp"

#include <aem/capsule.hpp>
#include <aem/cross_core.hpp>
#include <aem/event.hpp>
#include <aem/mutex.hpp>
#include <aem/runtime.hpp>
#include <aem/timer.hpp>
#include <aem/wait_group.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <string>
#include <system_error>
#include <vector>

using namespace std::chrono_literals;
using aem_test::data_of;
using aem_test::text_of;
using aem_test::wait_until;

TEST_CASE("events: activations run by priority, FIFO within a level") {
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([] {
    std::vector<std::string> order;
    aem::WaitGroup done;
    auto handler = [&](aem::EventData d) {
      order.push_back(text_of(d));
      done.done();
    };
    auto low = aem::on_event(handler, {.priority = aem::Priority::low});
    auto normal = aem::on_event(handler, {.priority = aem::Priority::normal});
    auto high = aem::on_event(handler, {.priority = aem::Priority::high});
    REQUIRE(low);
    REQUIRE(normal);
    REQUIRE(high);
    // Nothing runs before this capsule waits: all of them are ready at once.
    const std::pair<aem::EventId, const char*> triggers[] = {
        {*low, "low1"}, {*high, "high1"}, {*normal, "normal1"}, {*low, "low2"}, {*high, "high2"}, {*normal, "normal2"}};
    for (const auto& [id, text] : triggers) {
      done.add(1);
      REQUIRE(aem::trigger(id, data_of(text)));
    }
    // An activation's own priority beats its registration's.
    done.add(1);
    REQUIRE(aem::trigger(*low, data_of("low-as-critical"), aem::Priority::critical));
    done.wait();
    CHECK(order == std::vector<std::string>{"low-as-critical", "high1", "high2", "normal1", "normal2", "low1", "low2"});
    // set_priority reaches activations already queued (here: waiting for enable).
    order.clear();
    REQUIRE(aem::ctl(*low).disable());
    done.add(2);
    REQUIRE(aem::trigger(*low, data_of("was-low")));
    REQUIRE(aem::trigger(*normal, data_of("normal3")));
    REQUIRE(aem::ctl(*low).set_priority(aem::Priority::high));
    REQUIRE(aem::ctl(*low).enable());
    done.wait();
    CHECK(order == std::vector<std::string>{"was-low", "normal3"});
  });
}

TEST_CASE("events: a keepalive capsule runs at the priority of the activations queued behind it") {
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([] {
    std::vector<std::string> order;
    std::vector<aem::Priority> seen;
    auto id = aem::on_event(
        [&](aem::EventData d) {
          order.push_back(text_of(d));
          seen.push_back(aem::this_capsule::priority());
        },
        {.priority = aem::Priority::low, .exec = aem::Executor::keepalive});
    REQUIRE(id);
    auto hog = [&](const char* name) {
      auto c = aem::spawn([&order, name] { order.push_back(name); }, {.priority = aem::Priority::normal});
      REQUIRE(c);
      return std::move(*c);
    };

    // Boosted: r2 (high) is queued behind r1, so the capsule serving r1 runs at high — before a
    // normal-priority capsule that became ready earlier.
    REQUIRE(aem::trigger(*id, data_of("r1")));  // the keepalive capsule is ready, at low
    auto first = hog("hog1");
    REQUIRE(aem::trigger(*id, data_of("r2"), aem::Priority::high));
    first.join();
    REQUIRE(wait_until([&] { return order.size() == 3; }));
    CHECK(order == std::vector<std::string>{"r1", "r2", "hog1"});
    CHECK(seen == std::vector<aem::Priority>{aem::Priority::high, aem::Priority::high});

    // Not boosted: the same without a more urgent activation behind it.
    order.clear();
    seen.clear();
    REQUIRE(aem::trigger(*id, data_of("r3")));
    auto second = hog("hog2");
    second.join();
    REQUIRE(wait_until([&] { return order.size() == 2; }));
    CHECK(order == std::vector<std::string>{"hog2", "r3"});
    CHECK(seen == std::vector<aem::Priority>{aem::Priority::low});

    // set_priority on the registration re-orders its ready capsule at once.
    order.clear();
    REQUIRE(aem::trigger(*id, data_of("r4")));
    auto third = hog("hog3");
    REQUIRE(aem::ctl(*id).set_priority(aem::Priority::high));
    third.join();
    REQUIRE(wait_until([&] { return order.size() == 2; }));
    CHECK(order == std::vector<std::string>{"r4", "hog3"});
  });
}

TEST_CASE("events: inline handlers run on the dispatcher; blocking there is refused and counted") {
  for (unsigned cores : {1u, 2u}) {
    CAPTURE(cores);
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([&] {
      const unsigned home = cores - 1;
      std::atomic<int> ran{0};
      std::atomic<bool> in_capsule{true};
      std::vector<std::error_code> refused;
      std::atomic<int> spawned{0};
      std::atomic<int> chained{0};
      aem::Mutex mutex;
      auto ids = aem::submit(home, [&] {
        auto chained_id = aem::on_event([&] { chained.fetch_add(1); }, {.exec = aem::Executor::inline_handler});
        REQUIRE(chained_id);
        return aem::on_event(
            [&, next = *chained_id] {
              in_capsule = aem::this_capsule::inside();
              auto refuse = [&](auto&& call) {
                try {
                  call();
                  refused.push_back({});
                } catch (const std::system_error& e) {
                  refused.push_back(e.code());
                }
              };
              refuse([] { aem::this_capsule::sleep_for(1ms); });
              refuse([&] { mutex.lock(); });
              refuse([&] {
                auto c = aem::spawn([] {});
                REQUIRE(c);
                c->join();
              });
              aem::this_capsule::yield();  // returns at once (counted)
              refused.push_back(aem::submit(0, [] { return 1; }).error());
              // What an inline handler may do: start capsules, trigger, register.
              REQUIRE(aem::spawn([&] { spawned.fetch_add(1); }));
              REQUIRE(aem::trigger(next));
              auto more = aem::after(0ms, [&] { spawned.fetch_add(1); });
              REQUIRE(more);
              ran.fetch_add(1);
            },
            {.exec = aem::Executor::inline_handler});
      });
      REQUIRE(ids);
      REQUIRE(*ids);
      const aem::EventId id = **ids;
      mutex.lock();  // held here: the handler's lock() would have to wait
      REQUIRE(aem::trigger(id));
      REQUIRE(wait_until([&] { return ran.load() == 1 && spawned.load() == 2 && chained.load() == 1; }));
      mutex.unlock();
      CHECK_FALSE(in_capsule.load());
      REQUIRE(refused.size() == 4);
      for (const std::error_code& e : refused) CHECK(e == aem::errc::inline_handler_blocked);
      auto info = aem::ctl(id).info();
      REQUIRE(info);
      CHECK(info->blocked == 5);
      CHECK(info->exec == aem::Executor::inline_handler);
      auto stats = aem::submit(home, [] { return aem::this_core::event_stats(); });
      REQUIRE(stats);
      CHECK(stats->inline_blocked == 5);
      // An inline timer fires on the dispatcher too, and the core keeps running.
      std::atomic<bool> timer_inline{false};
      auto timer = aem::submit(home, [&] {
        return aem::after(0ms, [&] { timer_inline = !aem::this_capsule::inside(); }, {.exec = aem::Executor::inline_handler});
      });
      REQUIRE(timer);
      REQUIRE(*timer);
      REQUIRE(wait_until([&] { return timer_inline.load(); }));
    });
  }
}
