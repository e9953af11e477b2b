// Event groups: EventGroup::cancel from an inline handler of a multi-core runtime is
// refused (errc::inline_handler_blocked) without closing the group half way.
#include "support/cores.hpp"
#include "support/event_helpers.hpp"

#include <aem/capsule.hpp>
#include <aem/cross_core.hpp>
#include <aem/event.hpp>
#include <aem/group.hpp>
#include <aem/runtime.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <system_error>

using aem_test::wait_until;

TEST_CASE("groups: a refused cancel from an inline handler leaves the group open and its registrations live") {
  aem::Runtime rt(aem_test::config_for(2));
  rt.run([] {
    auto group = aem::EventGroup::create();
    REQUIRE(group);
    // One registration of the group on each core.
    std::atomic<int> here_runs{0};
    std::atomic<int> there_runs{0};
    aem::Result<aem::EventId> here = aem::make_error_code(aem::errc::cancelled);
    aem::Result<aem::EventId> there = aem::make_error_code(aem::errc::cancelled);
    std::atomic<bool> made{false};
    REQUIRE(aem::spawn(
        [&] {
          here = aem::on_event([&] { here_runs.fetch_add(1); });
          auto r = aem::submit(1, [&] { return aem::on_event([&] { there_runs.fetch_add(1); }); });
          if (r) there = *r;
          made.store(true);
        },
        {.group = *group}));
    REQUIRE(wait_until([&] { return made.load(); }));
    REQUIRE(here);
    REQUIRE(there);
    // The default group's inline handler tries to cancel the group.
    std::error_code refused;
    auto canceller = aem::on_event(
        [&] {
          auto cancelled = group->cancel();
          refused = cancelled ? std::error_code() : cancelled.error();
        },
        {.exec = aem::Executor::inline_handler});
    REQUIRE(canceller);
    REQUIRE(aem::trigger(*canceller));
    REQUIRE(wait_until([&] { return refused == aem::errc::inline_handler_blocked; }));
    CHECK_FALSE(group->cancelled());
    CHECK(aem::ctl(*here).info());
    CHECK(aem::ctl(*there).info());
    CHECK(aem::trigger(*here));
    CHECK(aem::trigger(*there));
    CHECK(wait_until([&] { return here_runs.load() == 1 && there_runs.load() == 1; }));
    // From a capsule it goes through.
    auto cancelled = group->cancel();
    REQUIRE(cancelled);
    CHECK(*cancelled == 2);
    CHECK_FALSE(aem::ctl(*here).info());
    CHECK_FALSE(aem::ctl(*there).info());
    CHECK(aem::cancel(*canceller));
  });
}
