// Completion coalescing (Config::coalesce_window): after a stretch with I/O an idle core sleeps
// a window to take completions in a batch. Due timers still end that sleep on time, and a
// window that brings nothing ends coalescing. (Echo traffic under coalescing is checked in
// events/socket_test.cpp; the backends' coalesced wait in io/backend_test.cpp.)
#include "support/backend_helpers.hpp"
#include "support/cores.hpp"

#include <aem/capsule.hpp>
#include <aem/fd_io.hpp>
#include <aem/metrics.hpp>
#include <aem/runtime.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <cstddef>
#include <thread>
#include <unistd.h>

using namespace std::chrono_literals;

namespace {

// round_trip writes a byte into `pipe` and reads it back through the core's backend, so the
// core has handled completions since it last went idle: its next sleep coalesces.
void round_trip(aem_test::Pipe& pipe) {
  const std::byte out{42};
  std::byte in{};
  auto written = aem::write(pipe.fds[1], std::span(&out, 1));
  REQUIRE(written);
  CHECK(*written == 1u);
  auto read = aem::read(pipe.fds[0], std::span(&in, 1));
  REQUIRE(read);
  CHECK(*read == 1u);
  CHECK(in == out);
}

aem::Config coalescing(std::chrono::nanoseconds window) {
  aem::Config config = aem_test::config_for(1);
  config.coalesce_window = window;
  return config;
}

}  // namespace

TEST_CASE("coalescing: a due timer ends a coalesced sleep on time") {
  aem::Runtime rt(coalescing(1s));
  rt.run([] {
    aem_test::Pipe traffic;
    aem_test::Pipe held;  // a read waits on it throughout: coalescing needs an operation in flight
    auto reader = aem::spawn([&] {
      std::byte byte{};
      return aem::read(held.fds[0], std::span(&byte, 1));
    });
    REQUIRE(reader);
    const aem::TimePoint started = aem::Clock::now();
    for (int i = 0; i < 10; ++i) {
      round_trip(traffic);
      aem::this_capsule::sleep_for(2ms);
    }
    // Had the one-second window held the timers back, the ten sleeps would take ten seconds.
    CHECK(aem::Clock::now() - started < 5s);
    const std::byte release{1};
    auto released = aem::write(held.fds[1], std::span(&release, 1));
    REQUIRE(released);
    auto read = reader->join();
    REQUIRE(read);
    CHECK(*read == 1u);
  });
}

TEST_CASE("coalescing: a window that brings nothing ends it: the idle core then sleeps until its next event") {
  aem::Runtime rt(coalescing(200us));
  rt.run([] {
    aem_test::Pipe pipe;
    round_trip(pipe);
    auto before = aem::this_core::metrics();
    REQUIRE(before);
    // The read waits 100 ms for a plain thread's byte. Coalescing for good would wake the core
    // every 200 us (some 500 loop turns); one empty window ends it, and the core sleeps until
    // the byte comes.
    std::thread writer([&] {
      std::this_thread::sleep_for(100ms);
      CHECK(::write(pipe.fds[1], "x", 1) == 1);
    });
    std::byte byte{};
    auto read = aem::read(pipe.fds[0], std::span(&byte, 1));
    writer.join();
    REQUIRE(read);
    CHECK(*read == 1u);
    auto after = aem::this_core::metrics();
    REQUIRE(after);
    CHECK(after->loop_turns - before->loop_turns < 50);
  });
}
