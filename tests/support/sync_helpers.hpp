// sync_helpers.hpp — small helpers shared by the sync unit and stress tests.
#pragma once

#include <aem/capsule.hpp>
#include <aem/error.hpp>
#include <aem/time.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <system_error>
#include <utility>

namespace aem_test {

// spawn_on starts `fn` on `core` and returns the handle (the test fails if it cannot).
template <typename F>
auto spawn_on(unsigned core, F&& fn) {
  auto capsule = aem::spawn(std::forward<F>(fn), {.core = core});
  REQUIRE(capsule);
  return std::move(*capsule);
}

// yield_until yields the calling capsule until `done()`.
template <typename F>
void yield_until(F&& done) {
  while (!done()) aem::this_capsule::yield();
}

// spin_for busy-waits (without suspending) for about `ns` nanoseconds: it only spreads out
// the moments at which one side of a race acts.
inline void spin_for(std::int64_t ns) {
  const auto until = aem::Clock::now() + std::chrono::nanoseconds(ns);
  while (aem::Clock::now() < until) {
  }
}

// is reports whether `code` is the aem error `e`.
inline bool is(const std::error_code& code, aem::errc e) { return code == aem::make_error_code(e); }

}  // namespace aem_test
