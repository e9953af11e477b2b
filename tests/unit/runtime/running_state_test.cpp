// Runtime::running() tells whether the runtime accepts work, so what a thread reads from it
// agrees with what submit then does — also right after a capsule requested the stop, while the
// cores still wind down in the background.
#include "support/cores.hpp"

#include <aem/capsule.hpp>
#include <aem/runtime.hpp>

#include <doctest/doctest.h>

#include <future>
#include <system_error>

namespace {

// submit_error returns the error a submit to `core` fails with, or no error if it ran.
std::error_code submit_error(aem::Runtime& rt, unsigned core) {
  try {
    (void)rt.submit(core, [] { return 1; }).get();
    return {};
  } catch (const std::system_error& e) {
    return e.code();
  }
}

}  // namespace

TEST_CASE("runtime: running() turns false when a capsule requests the stop, as submit starts refusing") {
  for (unsigned cores : {1u, 2u}) {
    CAPTURE(cores);
    aem::Runtime rt(aem_test::config_for(cores));
    REQUIRE(rt.start());
    CHECK(rt.running());
    CHECK_FALSE(submit_error(rt, cores - 1));  // running: submit runs

    // The capsule sees the change at once, before its own stop has gone anywhere.
    auto seen_inside = rt.submit(0, [&rt] {
      const bool before = rt.running();
      rt.stop();  // from a capsule: only requests it
      return before && !rt.running();
    });
    CHECK(seen_inside.get());

    // This thread reads running() after the stop was requested: false, and submit agrees.
    CHECK_FALSE(rt.running());
    const std::error_code refused = submit_error(rt, cores - 1);
    CHECK((refused == aem::errc::shutting_down || refused == aem::errc::not_running));
    CHECK_FALSE(rt.running());

    rt.stop();  // a plain thread's stop waits for the cores
    CHECK_FALSE(rt.running());
    CHECK(submit_error(rt, 0) == aem::errc::not_running);

    // And the runtime runs again.
    REQUIRE(rt.start());
    CHECK(rt.running());
    CHECK_FALSE(submit_error(rt, 0));
    rt.stop();
    CHECK_FALSE(rt.running());
  }
}

TEST_CASE("runtime: running() is true inside run and false once run returned") {
  aem::Runtime rt(aem_test::config_for(1));
  const bool inside = rt.run([&rt] { return rt.running(); });
  CHECK(inside);
  CHECK_FALSE(rt.running());
}
