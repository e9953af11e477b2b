// Executors and priorities of activations: priority order and FIFO within a level, the boost of
// a keepalive capsule by the activations queued behind it, and inline handlers (run on the
// dispatcher; a suspension there is refused and counted, never a deadlock), and bursts of
// fresh-capsule activations (they take capsules as fast as they run; none lost, none stuck).
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
  aem::Config config = aem_test::config_for(1);
  config.run_budget = 8;  // for the burst at the end
  aem::Runtime rt(config);
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
    // A burst held back (8 waiting to start, the rest queued: Executor::fresh_capsule) does
    // not hold back a more urgent activation.
    order.clear();
    done.add(41);
    for (int i = 0; i < 40; ++i) REQUIRE(aem::trigger(*normal, data_of("normal")));
    REQUIRE(aem::trigger(*high, data_of("high")));
    done.wait();
    REQUIRE(order.size() == 41);
    CHECK(order.front() == "high");
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

TEST_CASE("events: inline handlers run on the dispatcher: blocking there is refused and counted") {
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

namespace {

std::uint64_t capsules_mapped() {
  const aem::CoreMetrics m = aem::this_core::metrics().value();
  return m.capsules_live + m.capsules_pooled;
}

}  // namespace

TEST_CASE("events: a burst of fresh-capsule activations takes capsules only as fast as they run") {
  aem::Config config = aem_test::config_for(1);
  config.run_budget = 32;
  aem::Runtime rt(config);
  rt.run([] {
    constexpr int kBurst = 5000;
    int ran = 0;
    int last = -1;
    bool in_order = true;
    aem::WaitGroup done;
    auto id = aem::on_event(
        [&](aem::EventData d) {
          const int n = std::stoi(text_of(d));
          in_order = in_order && n == last + 1;
          last = n;
          ++ran;
          done.done();
        },
        {.queue_bound = kBurst});
    REQUIRE(id);
    const std::uint64_t before = capsules_mapped();
    done.add(kBurst);
    // The root keeps the core while it triggers: every activation waits, none has run.
    for (int i = 0; i < kBurst; ++i) REQUIRE(aem::trigger(*id, data_of(std::to_string(i))));
    done.wait();
    CHECK(ran == kBurst);
    CHECK(in_order);
    // Without the burst bound: a capsule (a stack) per activation, about 8,192 mapped. With it,
    // a turn's worth (run_budget) at once; the pool doubles when it grows, hence the factor.
    CHECK(capsules_mapped() <= 2 * (before + 32));
    const aem::EventInfo info = aem::ctl(*id).info().value();
    CHECK(info.delivered == kBurst);
    CHECK(info.lost == 0);
  });
}

TEST_CASE("events: a held-back burst loses nothing a capsule could run, and blocked handlers never hold it") {
  aem::Config config = aem_test::config_for(1);
  config.run_budget = 16;
  aem::Runtime rt(config);
  rt.run([] {
    // At the queue bound the oldest queued activations start at once (the pool grows) rather
    // than the newest being lost.
    constexpr int kPastBound = 300;
    int ran = 0;
    aem::WaitGroup done;
    auto quick = aem::on_event(
        [&](aem::EventData) {
          ++ran;
          done.done();
        },
        {.queue_bound = 50});
    REQUIRE(quick);
    done.add(kPastBound);
    for (int i = 0; i < kPastBound; ++i) REQUIRE(aem::trigger(*quick));
    done.wait();
    CHECK(ran == kPastBound);
    CHECK(aem::ctl(*quick).info().value().lost == 0);

    // Every handler blocks until all of them have started: only activations that have not
    // started count against the burst, so the rest keep being launched.
    constexpr int kBlocking = 200;
    int started = 0;
    auto blocking = aem::on_event([&](aem::EventData) {
      ++started;
      while (started < kBlocking) aem::this_capsule::sleep_for(1ms);
      done.done();
    });
    REQUIRE(blocking);
    done.add(kBlocking);
    for (int i = 0; i < kBlocking; ++i) REQUIRE(aem::trigger(*blocking));
    done.wait();
    CHECK(started == kBlocking);
  });
}
