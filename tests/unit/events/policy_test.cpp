// aem::Policy on a runtime (Config::policy): each limit refuses with errc::policy_limit and
// leaves what is registered working; max_active queues activations instead of losing them.
#include "support/cores.hpp"
#include "support/event_helpers.hpp"

#include <aem/capsule.hpp>
#include <aem/cross_core.hpp>
#include <aem/event.hpp>
#include <aem/policy.hpp>
#include <aem/runtime.hpp>
#include <aem/timer.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <optional>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using aem_test::wait_until;

namespace {

aem::Config config_with(unsigned cores, aem::Policy policy) {
  aem::Config config = aem_test::config_for(cores);
  config.policy = policy;
  return config;
}

}  // namespace

TEST_CASE("policy: the defaults limit nothing and the error says what refused") {
  constexpr aem::Policy unlimited{};
  CHECK(unlimited.unlimited());
  CHECK(unlimited.allows(aem::SourceType::timer));
  CHECK(unlimited.allows(aem::Executor::inline_handler));
  constexpr aem::Policy no_timers{.allowed_sources = aem::kAll & ~aem::mask_of(aem::SourceType::timer)};
  CHECK_FALSE(no_timers.unlimited());
  CHECK_FALSE(no_timers.allows(aem::SourceType::timer));
  CHECK(no_timers.allows(aem::SourceType::user));
  const std::error_code e = aem::errc::policy_limit;
  CHECK(e.message().find("Policy") != std::string::npos);
  CHECK(e != aem::errc::resource_limit);
}

TEST_CASE("policy: max_registrations counts across cores: a freed one may be taken again") {
  for (unsigned cores : {1u, 2u}) {
    CAPTURE(cores);
    aem::Runtime rt(config_with(cores, {.max_registrations = 3}));
    rt.run([&] {
      const unsigned other = cores - 1;
      std::atomic<int> fired{0};
      auto a = aem::every(1ms, [&] { fired.fetch_add(1); });
      auto b = aem::every(1ms, [&] { fired.fetch_add(1); });
      REQUIRE(a);
      REQUIRE(b);
      auto c = aem::submit(other, [&] { return aem::every(1ms, [&] { fired.fetch_add(1); }); });
      REQUIRE(c);
      REQUIRE(*c);
      // The fourth, on either core, is refused; the handler it carried is not kept.
      auto refused_here = aem::after(1ms, [] {});
      CHECK(refused_here.error() == aem::errc::policy_limit);
      auto refused_there = aem::submit(other, [] { return aem::on_event([] {}); });
      REQUIRE(refused_there);
      CHECK(refused_there->error() == aem::errc::policy_limit);
      CHECK(aem::this_core::event_stats().registrations == (cores == 1 ? 3u : 2u));
      // The three keep working.
      const int seen = fired.load();
      CHECK(wait_until([&] { return fired.load() >= seen + 6; }));
      CHECK(aem::ctl(*a).info());
      CHECK(aem::ctl(**c).info());
      // Cancelling one makes room for exactly one.
      REQUIRE(aem::cancel(*b));
      // b gives its place back when it retires: at once, or, if one of its activations had
      // already started (a capsule made ready, not yet run), when that handler returns.
      std::optional<aem::EventId> d;
      REQUIRE(wait_until([&] {
        if (auto id = aem::on_event([] {})) d = *id;
        return d.has_value();
      }));
      CHECK(aem::after(1ms, [] {}).error() == aem::errc::policy_limit);
      // A one-shot timer that fired gives its place back once retired.
      REQUIRE(aem::cancel(*d));
      std::atomic<bool> once{false};
      REQUIRE(aem::after(1ms, [&] { once = true; }));
      REQUIRE(wait_until([&] { return once.load(); }));
      auto e = aem_test::wait_until([&] {
        auto id = aem::on_event([] {});
        if (!id) return false;
        (void)aem::cancel(*id);
        return true;
      });
      CHECK(e);
      REQUIRE(aem::cancel(*a));
      REQUIRE(aem::cancel(**c));
    });
  }
}

TEST_CASE("policy: allowed_sources forbids timers and allows triggered events") {
  aem::Runtime rt(config_with(1, {.allowed_sources = aem::mask_of(aem::SourceType::user)}));
  rt.run([] {
    CHECK(aem::after(1ms, [] {}).error() == aem::errc::policy_limit);
    CHECK(aem::every(1ms, [] {}).error() == aem::errc::policy_limit);
    std::atomic<int> got{0};
    auto id = aem::on_event([&] { got.fetch_add(1); });
    REQUIRE(id);
    REQUIRE(aem::trigger(*id));
    CHECK(wait_until([&] { return got.load() == 1; }));
    CHECK(aem::this_core::event_stats().registrations == 1);
    REQUIRE(aem::cancel(*id));
  });
}

TEST_CASE("policy: allowed_executors forbids inline handlers") {
  const std::uint32_t capsules = aem::mask_of(aem::Executor::fresh_capsule) | aem::mask_of(aem::Executor::keepalive);
  aem::Runtime rt(config_with(1, {.allowed_executors = capsules}));
  rt.run([] {
    CHECK(aem::on_event([] {}, {.exec = aem::Executor::inline_handler}).error() == aem::errc::policy_limit);
    CHECK(aem::after(1ms, [] {}, {.exec = aem::Executor::inline_handler}).error() == aem::errc::policy_limit);
    std::atomic<int> got{0};
    auto fresh = aem::on_event([&] { got.fetch_add(1); }, {.exec = aem::Executor::fresh_capsule});
    auto keep = aem::on_event([&] { got.fetch_add(1); }, {.exec = aem::Executor::keepalive});
    REQUIRE(fresh);
    REQUIRE(keep);
    REQUIRE(aem::trigger(*fresh));
    REQUIRE(aem::trigger(*keep));
    CHECK(wait_until([&] { return got.load() == 2; }));
    REQUIRE(aem::cancel(*fresh));
    REQUIRE(aem::cancel(*keep));
  });
}

TEST_CASE("policy: max_capsules refuses spawn and post beyond it, on any core") {
  for (unsigned cores : {1u, 2u}) {
    CAPTURE(cores);
    aem::Runtime rt(config_with(cores, {.max_capsules = 2}));
    rt.run([&] {
      std::atomic<bool> go{false};
      auto hold = [&] { REQUIRE(wait_until([&] { return go.load(); })); };
      auto first = aem::spawn(hold);
      auto second = aem::spawn(hold, {.core = cores - 1});
      REQUIRE(first);
      REQUIRE(second);
      auto third = aem::spawn([] {});
      CHECK(third.error() == aem::errc::policy_limit);
      CHECK(aem::post(cores - 1, [] {}).error() == aem::errc::policy_limit);
      // Handlers are not capsules in this count (max_active governs them).
      std::atomic<int> handled{0};
      auto id = aem::on_event([&] { handled.fetch_add(1); });
      REQUIRE(id);
      REQUIRE(aem::trigger(*id));
      CHECK(wait_until([&] { return handled.load() == 1; }));
      go = true;
      first->join();
      second->join();
      // Both came back: two may run again.
      auto again = aem::spawn([] { return 7; });
      REQUIRE(again);
      CHECK(again->join() == 7);
      REQUIRE(aem::cancel(*id));
    });
  }
}

TEST_CASE("policy: max_active queues activations beyond it, none is lost") {
  for (unsigned cores : {1u, 2u}) {
    CAPTURE(cores);
    aem::Runtime rt(config_with(cores, {.max_active = 1}));
    rt.run([&] {
      const unsigned other = cores - 1;
      std::atomic<bool> go{false};
      std::atomic<int> running{0};
      std::atomic<int> most{0};
      std::atomic<int> done{0};
      auto handler = [&] {
        const int now = running.fetch_add(1) + 1;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        REQUIRE(wait_until([&] { return go.load(); }));
        running.fetch_sub(1);
        done.fetch_add(1);
      };
      auto a = aem::on_event(handler);
      REQUIRE(a);
      auto b = aem::submit(other, [&] { return aem::on_event(handler, {.exec = aem::Executor::keepalive}); });
      REQUIRE(b);
      REQUIRE(*b);
      REQUIRE(aem::trigger(*a));
      REQUIRE(wait_until([&] { return running.load() == 1; }));
      REQUIRE(aem::trigger(*a));
      REQUIRE(aem::trigger(**b));
      REQUIRE(aem::trigger(**b));
      // One runs; the others wait on their registrations, counted as queued, not lost.
      aem::this_capsule::sleep_for(5ms);
      CHECK(running.load() == 1);
      auto info_a = aem::ctl(*a).info();
      auto info_b = aem::ctl(**b).info();
      REQUIRE(info_a);
      REQUIRE(info_b);
      CHECK(info_a->running + info_b->running == 1);
      CHECK(info_a->queued + info_b->queued == 3);
      CHECK(info_a->lost + info_b->lost == 0);
      go = true;
      CHECK(wait_until([&] { return done.load() == 4; }));
      CHECK(most.load() == 1);
      CHECK(aem::ctl(*a).info()->delivered == 2);
      CHECK(aem::ctl(**b).info()->delivered == 2);
      REQUIRE(aem::cancel(*a));
      REQUIRE(aem::cancel(**b));
    });
  }
}

TEST_CASE("policy: max_active holds inline handlers back too") {
  aem::Runtime rt(config_with(1, {.max_active = 1}));
  rt.run([] {
    std::atomic<bool> go{false};
    std::atomic<bool> started{false};
    std::atomic<int> inline_ran{0};
    auto blocker = aem::on_event([&] {
      started = true;
      REQUIRE(wait_until([&] { return go.load(); }));
    });
    auto quick = aem::on_event([&] { inline_ran.fetch_add(1); }, {.exec = aem::Executor::inline_handler});
    REQUIRE(blocker);
    REQUIRE(quick);
    REQUIRE(aem::trigger(*blocker));
    REQUIRE(wait_until([&] { return started.load(); }));
    REQUIRE(aem::trigger(*quick));
    aem::this_capsule::sleep_for(5ms);
    CHECK(inline_ran.load() == 0);
    CHECK(aem::ctl(*quick).info()->queued == 1);
    go = true;
    CHECK(wait_until([&] { return inline_ran.load() == 1; }));
    REQUIRE(aem::cancel(*blocker));
    REQUIRE(aem::cancel(*quick));
  });
}
