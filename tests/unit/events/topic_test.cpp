// Topics (aem::publish / aem::subscribe): filters, fan-out sharing one buffer, delivery to
// another core without the publisher waiting, priority order, retention for late subscribers,
// Lost at the queue bound, cancel, and bad input.
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
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using aem_test::data_of;
using aem_test::Log;
using aem_test::on_core;
using aem_test::text_of;
using aem_test::wait_until;

namespace {

constexpr unsigned kTopicCores[] = {1, 2};


// keepalive: deliveries to one subscription in order, so logs compare exactly.
const aem::SubscribeOptions kInOrder{.exec = aem::Executor::keepalive};

}  // namespace

TEST_CASE("topics: TopicFilter matches exact, prefix, suffix and any names") {
  const auto exact = aem::TopicFilter::exact("a.b");
  CHECK(exact.matches("a.b"));
  CHECK_FALSE(exact.matches("a.bc"));
  CHECK_FALSE(exact.matches("a."));
  const auto prefix = aem::TopicFilter::prefix("sensors.");
  CHECK(prefix.matches("sensors.temp"));
  CHECK(prefix.matches("sensors."));
  CHECK_FALSE(prefix.matches("sensors"));
  CHECK_FALSE(prefix.matches("xsensors.temp"));
  const auto suffix = aem::TopicFilter::suffix(".temp");
  CHECK(suffix.matches("room.4.temp"));
  CHECK_FALSE(suffix.matches("room.4.temperature"));
  CHECK_FALSE(suffix.matches("temp"));
  CHECK(aem::TopicFilter::any().matches("anything"));
}

TEST_CASE("topics: each subscription gets the names its filter matches, and only those") {
  for (unsigned cores : kTopicCores) {
    CAPTURE(cores);
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([&] {
      const unsigned home = cores - 1;
      Log exact, prefix, suffix, any;
      auto logger = [](Log& log) {
        return [&log](std::string_view topic, aem::EventData d) { log.add(std::string(topic) + "=" + text_of(d)); };
      };
      const aem::EventId ids[] = {
          on_core(home, [&] { return aem::subscribe(aem::TopicFilter::exact("a.b"), logger(exact), kInOrder); }),
          on_core(home, [&] { return aem::subscribe(aem::TopicFilter::prefix("a."), logger(prefix), kInOrder); }),
          on_core(home, [&] { return aem::subscribe(aem::TopicFilter::suffix(".b"), logger(suffix), kInOrder); }),
          on_core(home, [&] { return aem::subscribe(aem::TopicFilter::any(), logger(any), kInOrder); }),
      };
      // name -> how many of the four subscriptions match it
      const std::pair<const char*, std::size_t> names[] = {{"a.b", 4}, {"a.c", 2}, {"x.b", 2}, {"a.bc", 2}, {"b", 1}};
      for (const auto& [name, want] : names) {
        auto reached = aem::publish(name, data_of(std::string("v-") + name));
        REQUIRE(reached);
        CHECK(*reached == want);
      }
      REQUIRE(wait_until([&] { return any.size() == 5 && exact.size() == 1 && prefix.size() == 3 && suffix.size() == 2; }));
      CHECK(exact.snapshot() == std::vector<std::string>{"a.b=v-a.b"});
      CHECK(prefix.snapshot() == std::vector<std::string>{"a.b=v-a.b", "a.c=v-a.c", "a.bc=v-a.bc"});
      CHECK(suffix.snapshot() == std::vector<std::string>{"a.b=v-a.b", "x.b=v-x.b"});
      CHECK(any.snapshot() == std::vector<std::string>{"a.b=v-a.b", "a.c=v-a.c", "x.b=v-x.b", "a.bc=v-a.bc", "b=v-b"});
      auto none = aem::publish("nobody.listens", data_of("x"));
      REQUIRE(none);
      CHECK(*none == 1);  // the `any` subscription
      auto info = aem::ctl(ids[0]).info();
      REQUIRE(info);
      CHECK(info->source == aem::SourceType::topic);
      CHECK(info->core == home);
      for (aem::EventId id : ids) CHECK(aem::ctl(id).cancel());
    });
  }
}

TEST_CASE("topics: a publish fans out on one core by sharing one buffer") {
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([&] {
    std::mutex mutex;
    std::vector<const std::byte*> pointers;
    std::vector<std::string> texts;
    std::vector<aem::EventId> ids;
    for (int i = 0; i < 3; ++i) {
      auto id = aem::subscribe(aem::TopicFilter::exact("fan"), [&](aem::SharedEventData d) {
        std::lock_guard lock(mutex);
        pointers.push_back(d.data());
        texts.push_back(text_of(d));
      });
      REQUIRE(id);
      ids.push_back(*id);
    }
    // One that takes EventData gets its own copy of the same bytes.
    std::string copied;
    auto own = aem::subscribe(aem::TopicFilter::exact("fan"), [&](aem::EventData d) { copied = text_of(d); });
    REQUIRE(own);
    aem::EventData data = data_of("shared bytes");
    const std::byte* original = data.data();
    auto reached = aem::publish("fan", std::move(data));
    REQUIRE(reached);
    CHECK(*reached == 4);
    REQUIRE(wait_until([&] {
      std::lock_guard lock(mutex);
      return pointers.size() == 3 && !copied.empty();
    }));
    CHECK(pointers[0] == original);  // shared, not copied
    CHECK(pointers[1] == original);
    CHECK(pointers[2] == original);
    CHECK(texts == std::vector<std::string>(3, "shared bytes"));
    CHECK(copied == "shared bytes");
    // A lone subscription gets the publisher's block itself.
    for (aem::EventId id : ids) REQUIRE(aem::cancel(id));
    REQUIRE(aem::cancel(*own));
    const std::byte* got = nullptr;
    auto single = aem::subscribe(aem::TopicFilter::exact("fan"), [&](aem::EventData d) { got = d.data(); });
    REQUIRE(single);
    data = data_of("alone");
    original = data.data();
    REQUIRE(aem::publish("fan", std::move(data)).value() == 1);
    REQUIRE(wait_until([&] { return got != nullptr; }));
    CHECK(got == original);
  });
}

TEST_CASE("topics: a subscriber on another core gets the event there, at its priority, and the publisher does not wait") {
  for (unsigned cores : kTopicCores) {
    CAPTURE(cores);
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([&] {
      const unsigned home = cores - 1;
      std::atomic<bool> published{false};
      std::atomic<bool> saw_published{false};
      std::atomic<unsigned> ran_on{aem::this_core::kNone};
      std::atomic<int> ran_at{-1};
      std::atomic<int> done{0};
      Log log;
      const aem::EventId id = on_core(home, [&] {
        return aem::subscribe(
            aem::TopicFilter::prefix("remote."),
            [&](std::string_view topic, aem::EventData d) {
              ran_on = aem::this_core::id();
              ran_at = static_cast<int>(aem::this_capsule::priority());
              // Blocks until the publisher is past publish(): a publisher that waited for its
              // subscribers would never get there.
              saw_published = wait_until([&] { return published.load(); });
              log.add(std::string(topic) + "=" + text_of(d));
              ++done;
            },
            {.priority = aem::Priority::high, .exec = aem::Executor::keepalive});
      });
      REQUIRE(aem::this_core::id() == 0);
      auto reached = aem::publish("remote.a", data_of("1"));
      REQUIRE(reached);
      CHECK(*reached == 1);
      REQUIRE(aem::publish("remote.b", data_of("2")).value() == 1);
      published = true;
      REQUIRE(wait_until([&] { return done.load() == 2; }));
      CHECK(saw_published.load());
      CHECK(ran_on.load() == home);
      CHECK(ran_at.load() == static_cast<int>(aem::Priority::high));
      CHECK(log.snapshot() == std::vector<std::string>{"remote.a=1", "remote.b=2"});  // publish order
      // The event's own priority, when the publisher gives one, wins.
      REQUIRE(aem::publish("remote.c", data_of("3"), {.priority = aem::Priority::low}).value() == 1);
      REQUIRE(wait_until([&] { return done.load() == 3; }));
      CHECK(ran_at.load() == static_cast<int>(aem::Priority::low));
      CHECK(aem::cancel(id));
    });
  }
}

TEST_CASE("topics: deliveries run in priority order") {
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([&] {
    Log log;
    // Subscriptions of three priorities: one publish starts three capsules, highest first.
    std::vector<aem::EventId> ids;
    for (aem::Priority p : {aem::Priority::low, aem::Priority::normal, aem::Priority::high}) {
      auto id = aem::subscribe(aem::TopicFilter::exact("prio"),
                               [&log, p] { log.add("sub" + std::to_string(static_cast<int>(p))); }, {.priority = p});
      REQUIRE(id);
      ids.push_back(*id);
    }
    REQUIRE(aem::publish("prio", {}).value() == 3);
    REQUIRE(wait_until([&] { return log.size() == 3; }));
    CHECK(log.snapshot() == std::vector<std::string>{"sub6", "sub4", "sub2"});
    for (aem::EventId id : ids) REQUIRE(aem::cancel(id));

    // Events of three priorities waiting for one (disabled) subscription: highest first too.
    Log events;
    auto id = aem::subscribe(aem::TopicFilter::exact("ev"), [&](aem::EventData d) { events.add(text_of(d)); });
    REQUIRE(id);
    REQUIRE(aem::ctl(*id).disable());
    REQUIRE(aem::publish("ev", data_of("low"), {.priority = aem::Priority::low}));
    REQUIRE(aem::publish("ev", data_of("high"), {.priority = aem::Priority::high}));
    REQUIRE(aem::publish("ev", data_of("normal"), {.priority = aem::Priority::normal}));
    REQUIRE(aem::ctl(*id).enable());
    REQUIRE(wait_until([&] { return events.size() == 3; }));
    CHECK(events.snapshot() == std::vector<std::string>{"high", "normal", "low"});
    CHECK(aem::cancel(*id));
  });
}

TEST_CASE("topics: a late subscriber gets the unexpired retained events, in publish order, before new ones") {
  for (unsigned cores : kTopicCores) {
    CAPTURE(cores);
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([&] {
      const unsigned home = cores - 1;
      REQUIRE(aem::publish("r.1", data_of("one"), {.retention = 1h}).value() == 0);
      REQUIRE(aem::publish("r.2", data_of("two"), {.retention = 1ms}));  // expires before anyone subscribes
      REQUIRE(aem::publish("r.3", data_of("three"), {.retention = 1h}));
      REQUIRE(aem::publish("other", data_of("x"), {.retention = 1h}));  // retained, but not matched
      REQUIRE(aem::publish("r.4", data_of("four")));                    // not retained
      aem::this_capsule::sleep_for(20ms);
      Log log;
      const aem::EventId id = on_core(home, [&] {
        return aem::subscribe(aem::TopicFilter::prefix("r."),
                              [&](std::string_view topic, aem::SharedEventData d) { log.add(std::string(topic) + "=" + text_of(d)); },
                              kInOrder);
      });
      REQUIRE(aem::publish("r.5", data_of("five")).value() == 1);
      REQUIRE(wait_until([&] { return log.size() == 3; }));
      aem::this_capsule::sleep_for(5ms);  // nothing else arrives
      CHECK(log.snapshot() == std::vector<std::string>{"r.1=one", "r.3=three", "r.5=five"});
      // Another late subscriber, on this core, gets them again (retention is not consumed).
      Log again;
      auto third = aem::subscribe(aem::TopicFilter::any(), [&](std::string_view topic, aem::EventData) { again.add(std::string(topic)); },
                                  kInOrder);
      REQUIRE(third);
      REQUIRE(wait_until([&] { return again.size() == 3; }));
      CHECK(again.snapshot() == std::vector<std::string>{"r.1", "r.3", "other"});
      CHECK(aem::cancel(id));
      CHECK(aem::cancel(*third));
    });
  }
}

TEST_CASE("topics: a subscriber at its queue bound loses events and on_lost hears exactly how many") {
  for (unsigned cores : kTopicCores) {
    CAPTURE(cores);
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([&] {
      const unsigned home = cores - 1;
      Log log;
      std::atomic<std::uint64_t> lost{0};
      const aem::EventId id = on_core(home, [&] {
        return aem::subscribe(aem::TopicFilter::exact("flood"), [&](aem::EventData d) { log.add(text_of(d)); },
                              {.exec = aem::Executor::keepalive,
                               .queue_bound = 4,
                               .on_lost = [&](aem::Lost l) {
                                 lost += l.count;
                                 log.add("lost " + std::to_string(l.count));
                               }});
      });
      REQUIRE(aem::ctl(id).disable());
      for (int i = 0; i < 10; ++i) REQUIRE(aem::publish("flood", data_of(std::to_string(i))).value() == 1);  // never refused
      REQUIRE(wait_until([&] { return aem::ctl(id).info()->activated == 10; }));
      auto info = aem::ctl(id).info();
      REQUIRE(info);
      CHECK(info->queued == 4);
      CHECK(info->lost == 6);
      CHECK_FALSE(info->throttled);  // a topic cannot wait
      REQUIRE(aem::ctl(id).enable());
      REQUIRE(wait_until([&] { return log.size() == 5; }));
      CHECK(log.snapshot() == std::vector<std::string>{"0", "1", "2", "3", "lost 6"});
      info = aem::ctl(id).info();
      REQUIRE(info);
      CHECK(info->delivered + lost.load() == 10);
      CHECK(aem::cancel(id));
    });
  }
}

TEST_CASE("topics: a cancelled subscription gets nothing more and publish no longer counts it") {
  for (unsigned cores : kTopicCores) {
    CAPTURE(cores);
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([&] {
      const unsigned home = cores - 1;
      std::atomic<int> a{0};
      std::atomic<int> b{0};
      const aem::EventId first =
          on_core(home, [&] { return aem::subscribe(aem::TopicFilter::exact("t"), [&] { ++a; }); });
      const aem::EventId second =
          on_core(home, [&] { return aem::subscribe(aem::TopicFilter::prefix("t"), [&] { ++b; }); });
      REQUIRE(aem::publish("t", {}).value() == 2);
      REQUIRE(wait_until([&] { return a.load() == 1 && b.load() == 1; }));
      REQUIRE(aem::ctl(first).cancel());
      REQUIRE(aem::publish("t", {}).value() == 1);
      REQUIRE(wait_until([&] { return b.load() == 2; }));
      aem::this_capsule::sleep_for(5ms);
      CHECK(a.load() == 1);
      CHECK(aem::ctl(first).info().error() == aem::errc::stale_event_id);
      CHECK(aem::cancel(first).error() == aem::errc::stale_event_id);
      // A topic subscription is fed by publish only.
      CHECK(aem::trigger(second).error() == aem::errc::invalid_argument);
      // Its handler can be replaced by any topic handler form.
      std::atomic<int> c{0};
      REQUIRE(aem::ctl(second).replace_handler([&](std::string_view topic, aem::SharedEventData) {
        if (topic == "t") ++c;
      }));
      CHECK(aem::ctl(second).replace_handler([](aem::SocketState) {}).error() == aem::errc::invalid_argument);
      REQUIRE(aem::publish("t", {}).value() == 1);
      REQUIRE(wait_until([&] { return c.load() == 1; }));
      REQUIRE(aem::cancel(second));
      CHECK(aem::publish("t", {}).value() == 0);
    });
  }
}

TEST_CASE("topics: an inline subscriber and an inline publisher") {
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([&] {
    Log log;
    auto sink = aem::subscribe(aem::TopicFilter::exact("out"), [&](aem::EventData d) { log.add(text_of(d)); },
                               {.exec = aem::Executor::inline_handler});
    REQUIRE(sink);
    // An inline handler that republishes what it gets.
    auto relay = aem::subscribe(
        aem::TopicFilter::exact("in"),
        [&](aem::EventData d) {
          auto r = aem::publish("out", std::move(d));
          log.add(r ? "relayed " + std::to_string(*r) : "failed");
        },
        {.exec = aem::Executor::inline_handler});
    REQUIRE(relay);
    REQUIRE(aem::publish("in", data_of("x")).value() == 1);
    REQUIRE(wait_until([&] { return log.size() == 2; }));
    CHECK(log.snapshot() == std::vector<std::string>{"relayed 1", "x"});
    CHECK(aem::cancel(*sink));
    CHECK(aem::cancel(*relay));
  });
}

TEST_CASE("topics: bad input is refused") {
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([&] {
    using aem::errc;
    CHECK(aem::publish("", data_of("x")).error() == errc::invalid_argument);
    CHECK(aem::publish(std::string(256, 'n'), data_of("x")).error() == errc::invalid_argument);
    CHECK(aem::publish(std::string(255, 'n'), data_of("x")).value() == 0);
    CHECK(aem::publish("t", data_of("x"), {.retention = -1ms}).error() == errc::invalid_argument);
    CHECK(aem::publish("t", data_of("x"), {.priority = aem::Priority{8}}).error() == errc::invalid_argument);
    auto handler = [](aem::EventData) {};
    CHECK(aem::subscribe(aem::TopicFilter::exact(""), handler).error() == errc::invalid_argument);
    CHECK(aem::subscribe(aem::TopicFilter::prefix(""), handler).error() == errc::invalid_argument);
    CHECK(aem::subscribe(aem::TopicFilter::suffix(std::string(256, 's')), handler).error() == errc::invalid_argument);
    CHECK(aem::subscribe(aem::TopicFilter{aem::TopicFilter::Kind::any, "x"}, handler).error() == errc::invalid_argument);
    CHECK(aem::subscribe(aem::TopicFilter{static_cast<aem::TopicFilter::Kind>(9), "x"}, handler).error() ==
          errc::invalid_argument);
    CHECK(aem::subscribe(aem::TopicFilter::any(), handler, {.queue_bound = 0}).error() == errc::invalid_argument);
    CHECK(aem::subscribe(aem::TopicFilter::any(), handler, {.priority = aem::Priority{9}}).error() ==
          errc::invalid_argument);
    CHECK(aem::this_core::event_stats().registrations == 0);  // none was left behind
  });
  // From a plain thread.
  CHECK(aem::publish("t", {}).error() == aem::errc::not_in_capsule);
  CHECK(aem::subscribe(aem::TopicFilter::any(), [] {}).error() == aem::errc::not_in_capsule);
  std::thread([] { CHECK(aem::publish("t", {}).error() == aem::errc::not_in_capsule); }).join();
}
