// Event groups: membership (a capsule's registrations, its children, its handlers), fresh and
// given groups, cancel on every core, per-group policies, and the group's lifetime.
#include "support/cores.hpp"
#include "support/event_helpers.hpp"

#include <aem/capsule.hpp>
#include <aem/cross_core.hpp>
#include <aem/event.hpp>
#include <aem/group.hpp>
#include <aem/runtime.hpp>
#include <aem/timer.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <vector>

using namespace std::chrono_literals;
using aem_test::wait_until;

TEST_CASE("groups: registrations join the capsule's group: children inherit it, a fresh one separates") {
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([] {
    CHECK(aem::this_capsule::group().is_default());
    CHECK(aem::this_capsule::group() == aem::EventGroup());
    auto g = aem::EventGroup::create();
    REQUIRE(g);
    CHECK_FALSE(g->is_default());
    CHECK(g->policy().unlimited());
    auto parent = aem::spawn(
        [&] {
          CHECK(aem::this_capsule::group() == *g);
          auto own = aem::on_event([] {});
          REQUIRE(own);
          CHECK(g->stats().registrations == 1);
          // A child inherits the group: what it registers is the group's.
          auto child = aem::spawn([&] {
            CHECK(aem::this_capsule::group() == *g);
            return aem::every(1h, [] {});
          });
          REQUIRE(child);
          auto child_id = child->join();
          REQUIRE(child_id);
          CHECK(g->stats().registrations == 2);
          // A fresh group: separate.
          aem::EventGroup fresh_seen;
          auto loner = aem::spawn(
              [&] {
                fresh_seen = aem::this_capsule::group();
                return aem::on_event([] {});
              },
              {.group = aem::SpawnGroup::fresh()});
          REQUIRE(loner);
          auto loner_id = loner->join();
          REQUIRE(loner_id);
          CHECK_FALSE(fresh_seen.is_default());
          CHECK_FALSE(fresh_seen == *g);
          CHECK(fresh_seen.stats().registrations == 1);
          // The default group, given explicitly.
          auto back_home = aem::spawn(
              [] {
                CHECK(aem::this_capsule::group().is_default());
                return aem::on_event([] {});
              },
              {.group = aem::EventGroup()});
          REQUIRE(back_home);
          auto home_id = back_home->join();
          REQUIRE(home_id);
          CHECK(g->stats().registrations == 2);
          CHECK(g->stats().capsules == 1);  // this capsule; its children have finished
          for (aem::EventId id : {*own, *child_id, *loner_id, *home_id}) REQUIRE(aem::cancel(id));
          CHECK(fresh_seen.stats().registrations == 0);
        },
        {.group = *g});
    REQUIRE(parent);
    parent->join();
    CHECK(g->stats().registrations == 0);
    CHECK(g->stats().capsules == 0);
  });
}

TEST_CASE("groups: a handler runs in its registration's group and registers there") {
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([] {
    auto g = aem::EventGroup::create();
    REQUIRE(g);
    std::atomic<int> in_group{0};
    std::vector<aem::EventId> made;
    auto handler = [&] {
      if (aem::this_capsule::group() == *g) in_group.fetch_add(1);
      auto id = aem::on_event([] {});
      REQUIRE(id);
      made.push_back(*id);
    };
    auto ids = aem::spawn(
        [&] {
          auto fresh = aem::on_event(handler);
          auto inl = aem::on_event(handler, {.exec = aem::Executor::inline_handler});
          REQUIRE(fresh);
          REQUIRE(inl);
          return std::vector<aem::EventId>{*fresh, *inl};
        },
        {.group = *g});
    REQUIRE(ids);
    const std::vector<aem::EventId> both = ids->join();
    for (aem::EventId id : both) REQUIRE(aem::trigger(id));  // from the default group
    REQUIRE(wait_until([&] { return made.size() == 2; }));
    CHECK(in_group.load() == 2);
    CHECK(g->stats().registrations == 4);
    for (aem::EventId id : made) REQUIRE(aem::cancel(id));
    for (aem::EventId id : both) REQUIRE(aem::cancel(id));
    CHECK(wait_until([&] { return g->stats().registrations == 0; }));
  });
}

TEST_CASE("groups: cancel ends the group's registrations on every core and no other's") {
  for (unsigned cores : {1u, 2u}) {
    CAPTURE(cores);
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([&] {
      const unsigned far = cores - 1;
      auto g = aem::EventGroup::create();
      REQUIRE(g);
      std::atomic<int> group_ticks{0};
      std::atomic<int> other_ticks{0};
      std::atomic<bool> started{false};
      std::atomic<bool> go{false};
      std::atomic<bool> finished{false};
      std::atomic<bool> stop_member{false};
      std::atomic<bool> member_refused{false};

      // The group's registrations on the far core (by a capsule of the group there), one of
      // them with a handler running when the group is cancelled.
      auto far_ids = aem::spawn(
          [&] {
            std::vector<aem::EventId> ids;
            ids.push_back(*aem::every(1ms, [&] { group_ticks.fetch_add(1); }));
            ids.push_back(*aem::on_event([] {}, {.exec = aem::Executor::keepalive}));
            ids.push_back(*aem::on_event([&] {
              started = true;
              REQUIRE(wait_until([&] { return go.load(); }));
              finished = true;
            }));
            return ids;
          },
          {.core = far, .group = *g});
      REQUIRE(far_ids);
      const std::vector<aem::EventId> group_ids = far_ids->join();
      for (aem::EventId id : group_ids) CHECK(id.core() == far);
      // One on core 0 too, by a member that stays alive past the cancel.
      std::atomic<bool> member_registered{false};
      aem::EventId near_id;
      auto member = aem::spawn(
          [&] {
            near_id = *aem::every(1ms, [&] { group_ticks.fetch_add(1); });
            member_registered = true;
            REQUIRE(wait_until([&] { return stop_member.load(); }));
            member_refused = aem::on_event([] {}).error() == aem::errc::cancelled;
          },
          {.group = *g});
      REQUIRE(member);
      REQUIRE(wait_until([&] { return member_registered.load(); }));
      // Another group's (the default) on the far core.
      auto other = aem::submit(far, [&] { return aem::every(1ms, [&] { other_ticks.fetch_add(1); }); });
      REQUIRE(other);
      REQUIRE(*other);
      CHECK(g->stats().registrations == 4);

      REQUIRE(aem::trigger(group_ids[2]));
      REQUIRE(wait_until([&] { return started.load(); }));
      auto cancelled = g->cancel();
      REQUIRE(cancelled);
      CHECK(*cancelled == 4);
      CHECK(g->cancelled());
      for (aem::EventId id : group_ids) CHECK(aem::ctl(id).info().error() == aem::errc::stale_event_id);
      CHECK(aem::ctl(near_id).info().error() == aem::errc::stale_event_id);
      // The running handler finishes; nothing of the group fires again.
      CHECK_FALSE(finished.load());
      go = true;
      CHECK(wait_until([&] { return finished.load(); }));
      const int ticks_after = group_ticks.load();
      const int other_before = other_ticks.load();
      CHECK(wait_until([&] { return other_ticks.load() >= other_before + 5; }));
      CHECK(group_ticks.load() == ticks_after);
      CHECK(aem::ctl(**other).info());
      // The group is closed: its members may not register, nobody may spawn into it.
      stop_member = true;
      member->join();
      CHECK(member_refused.load());
      CHECK(aem::spawn([] {}, {.group = *g}).error() == aem::errc::cancelled);
      CHECK(wait_until([&] { return g->stats().registrations == 0; }));
      CHECK(g->cancel().value() == 0);  // again: nothing left
      REQUIRE(aem::cancel(**other));
    });
  }
}

TEST_CASE("groups: a group's policy limits its registrations, sources and capsules") {
  for (unsigned cores : {1u, 2u}) {
    CAPTURE(cores);
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([&] {
      auto g = aem::EventGroup::create(
          {.max_registrations = 2, .max_capsules = 1, .allowed_sources = aem::mask_of(aem::SourceType::user)});
      REQUIRE(g);
      CHECK(g->policy().max_registrations == 2);
      std::atomic<bool> go{false};
      auto worker = aem::spawn(
          [&] {
            std::vector<aem::EventId> ids;
            ids.push_back(*aem::on_event([] {}));
            CHECK(aem::after(1ms, [] {}).error() == aem::errc::policy_limit);  // a timer: not allowed
            auto second = aem::submit(0, [] { return aem::on_event([] {}); });  // same group, core 0
            REQUIRE(second);
            REQUIRE(*second);
            ids.push_back(**second);
            CHECK(aem::on_event([] {}).error() == aem::errc::policy_limit);  // a third
            CHECK(aem::spawn([] {}).error() == aem::errc::policy_limit);    // a second capsule
            REQUIRE(wait_until([&] { return go.load(); }));
            REQUIRE(aem::cancel(ids[0]));
            auto again = aem::on_event([] {});  // room for one again
            REQUIRE(again);
            ids[0] = *again;
            return ids;
          },
          {.core = cores - 1, .group = *g});
      REQUIRE(worker);
      CHECK(wait_until([&] { return g->stats().registrations == 2; }));
      // Another group is not held by this one's limits.
      CHECK(aem::spawn([] {}, {.group = *g}).error() == aem::errc::policy_limit);
      std::vector<aem::EventId> mine;
      for (int i = 0; i < 3; ++i) {
        auto id = aem::after(1h, [] {});
        REQUIRE(id);
        mine.push_back(*id);
      }
      go = true;
      const std::vector<aem::EventId> ids = worker->join();
      CHECK(g->stats().registrations == 2);
      CHECK(g->stats().capsules == 0);
      for (aem::EventId id : ids) REQUIRE(aem::cancel(id));
      for (aem::EventId id : mine) REQUIRE(aem::cancel(id));
      CHECK(g->stats().registrations == 0);
    });
  }
}

TEST_CASE("groups: the runtime's policy applies to a group's registrations as well") {
  aem::Config config = aem_test::config_for(1);
  config.policy.max_registrations = 2;
  aem::Runtime rt(config);
  rt.run([] {
    auto g = aem::EventGroup::create({.max_registrations = 10});
    REQUIRE(g);
    auto outside = aem::on_event([] {});
    REQUIRE(outside);
    auto inside = aem::spawn(
        [] {
          auto a = aem::on_event([] {});
          REQUIRE(a);
          const bool refused = aem::on_event([] {}).error() == aem::errc::policy_limit;
          REQUIRE(aem::cancel(*a));
          return refused;
        },
        {.group = *g});
    REQUIRE(inside);
    CHECK(inside->join());
    REQUIRE(aem::cancel(*outside));
  });
}

TEST_CASE("groups: max_active of a group holds its own activations, not another group's") {
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([] {
    auto g = aem::EventGroup::create({.max_active = 1});
    REQUIRE(g);
    std::atomic<bool> go{false};
    std::atomic<int> group_done{0};
    std::atomic<int> other_done{0};
    auto ids = aem::spawn(
        [&] {
          auto blocker = aem::on_event([&] {
            REQUIRE(wait_until([&] { return go.load(); }));
            group_done.fetch_add(1);
          });
          auto quick = aem::on_event([&] { group_done.fetch_add(1); });
          REQUIRE(blocker);
          REQUIRE(quick);
          return std::vector<aem::EventId>{*blocker, *quick};
        },
        {.group = *g});
    REQUIRE(ids);
    const std::vector<aem::EventId> group_ids = ids->join();
    auto other = aem::on_event([&] { other_done.fetch_add(1); });
    REQUIRE(other);
    REQUIRE(aem::trigger(group_ids[0]));
    REQUIRE(wait_until([&] { return g->stats().active == 1; }));
    REQUIRE(aem::trigger(group_ids[1]));
    REQUIRE(aem::trigger(*other));
    CHECK(wait_until([&] { return other_done.load() == 1; }));
    CHECK(group_done.load() == 0);
    CHECK(aem::ctl(group_ids[1]).info()->queued == 1);
    go = true;
    CHECK(wait_until([&] { return group_done.load() == 2; }));
    CHECK(aem::ctl(group_ids[1]).info()->lost == 0);
    CHECK(wait_until([&] { return g->stats().active == 0; }));
    for (aem::EventId id : group_ids) REQUIRE(aem::cancel(id));
    REQUIRE(aem::cancel(*other));
  });
}

TEST_CASE("groups: refused uses, and a handle that outlives its runtime") {
  auto outside = aem::EventGroup::create();
  CHECK(outside.error() == aem::errc::not_in_capsule);
  CHECK(aem::this_capsule::group().is_default());
  aem::EventGroup kept;
  {
    aem::Runtime rt(aem_test::config_for(1));
    kept = rt.run([] {
      CHECK(aem::EventGroup().cancel().error() == aem::errc::invalid_argument);
      auto g = aem::EventGroup::create({.max_active = 3});
      REQUIRE(g);
      auto id = aem::spawn([] { return aem::every(1h, [] {}); }, {.group = *g});
      REQUIRE(id);
      REQUIRE(id->join());  // left registered: the runtime's shutdown cancels it
      return *g;
    });
  }
  CHECK(kept.policy().max_active == 3);
  CHECK(kept.stats().registrations == 0);
  aem::Runtime other(aem_test::config_for(1));
  other.run([&] {
    CHECK(kept.cancel().error() == aem::errc::invalid_argument);
    CHECK(aem::spawn([] {}, {.group = kept}).error() == aem::errc::invalid_argument);
  });
}
