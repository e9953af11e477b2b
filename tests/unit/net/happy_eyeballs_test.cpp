// Connecting over an address list (RFC 8305): the order of the attempts, the winner, the
// errors, and that the losing sockets are closed.
#include "runtime/net/happy_eyeballs.hpp"
#include "support/net_helpers.hpp"
#include "unit/net/connect_helpers.hpp"

#include <aem/capsule.hpp>
#include <aem/net.hpp>
#include <aem/runtime.hpp>

#include <doctest/doctest.h>

#include <memory>
#include <optional>
#include <system_error>
#include <vector>

using namespace std::chrono_literals;

using aem_test::check_fails_closing_all;
using aem_test::make_unanswered;
using aem_test::one_core;
using aem_test::open_descriptors;
using aem_test::RefusingPort;
using aem_test::Unanswered;

TEST_CASE("net happy eyeballs: the first address's family goes first, then the families alternate") {
  const auto v4 = [](std::uint16_t port) { return aem::SocketAddress::ipv4_loopback(port); };
  const auto v6 = [](std::uint16_t port) { return aem::SocketAddress::ipv6_loopback(port); };
  const std::vector<aem::SocketAddress> mixed = {v6(1), v6(2), v6(3), v4(4), v4(5)};
  CHECK(aem::detail::interleave_families(mixed) == std::vector<aem::SocketAddress>{v6(1), v4(4), v6(2), v4(5), v6(3)});
  const std::vector<aem::SocketAddress> ipv4_first = {v4(1), v6(2), v6(3), v4(4)};
  CHECK(aem::detail::interleave_families(ipv4_first) == std::vector<aem::SocketAddress>{v4(1), v6(2), v4(4), v6(3)});
  const std::vector<aem::SocketAddress> one_family = {v4(3), v4(1), v4(2)};
  CHECK(aem::detail::interleave_families(one_family) == one_family);
}

TEST_CASE("net happy eyeballs: an address that does not answer loses to the next one and is closed") {
  aem::Runtime rt(one_core());
  rt.run([] {
    std::optional<Unanswered> hole = make_unanswered();
    if (!hole) return;  // skipped
    aem::TcpListener listener = aem_test::loopback_listener();
    const aem::SocketAddress good = listener.local_address().value();
    const std::vector<aem::SocketAddress> addresses = {hole->address, good};
    const int before = open_descriptors();
    auto stream = aem::TcpStream::connect(addresses, 10s, {.attempt_delay = 20ms});
    REQUIRE(stream);
    CHECK(stream->peer_address().value() == good);
    CHECK(open_descriptors() == before + 1);  // the winner only: the unanswered attempt is closed
    REQUIRE(stream->close());
    CHECK(open_descriptors() == before);
    auto accepted = listener.accept(10s);
    CHECK(accepted);
  });
}

TEST_CASE("net happy eyeballs: a refused attempt starts the next one without waiting for the delay") {
  aem::Runtime rt(one_core());
  rt.run([] {
    RefusingPort refusing_port;
    const aem::SocketAddress refusing = refusing_port.address();
    aem::TcpListener listener = aem_test::loopback_listener();
    const aem::SocketAddress good = listener.local_address().value();
    const std::vector<aem::SocketAddress> addresses = {refusing, good};
    const int before = open_descriptors();
    // A delay far beyond the deadline: only the refusal can start the second attempt in time.
    auto stream = aem::TcpStream::connect(addresses, 30s, {.attempt_delay = 1h});
    REQUIRE(stream);
    CHECK(stream->peer_address().value() == good);
    CHECK(open_descriptors() == before + 1);
  });
}

TEST_CASE("net happy eyeballs: when every address refuses, the last refusal is the error") {
  aem::Runtime rt(one_core());
  rt.run([] {
    RefusingPort first;
    RefusingPort second;
    const std::vector<aem::SocketAddress> addresses = {first.address(), second.address()};
    check_fails_closing_all(std::make_error_code(std::errc::connection_refused),
                            [&] { return aem::TcpStream::connect(addresses, 10s, {.attempt_delay = 5ms}); });
  });
}

TEST_CASE("net happy eyeballs: the deadline ends every attempt with timed_out and closes them") {
  aem::Runtime rt(one_core());
  rt.run([] {
    std::optional<Unanswered> hole = make_unanswered();
    if (!hole) return;  // skipped
    const std::vector<aem::SocketAddress> addresses = {hole->address, hole->address, hole->address};
    check_fails_closing_all(aem::errc::timed_out,
                            [&] { return aem::TcpStream::connect(addresses, 200ms, {.attempt_delay = 10ms}); });
  });
}

TEST_CASE("net happy eyeballs: IPv6 and IPv4 loopback in one list") {
  aem::Runtime rt(one_core());
  rt.run([] {
    auto six = aem::TcpListener::bind(aem::SocketAddress::ipv6_loopback(0));
    if (!six) {
      MESSAGE("no IPv6 loopback here (" << six.error().message() << "): skipped");
      return;
    }
    RefusingPort refusing_port;
    const aem::SocketAddress refusing = refusing_port.address();
    const aem::SocketAddress good = six->local_address().value();
    // IPv4 first: the refused IPv4 attempt hands over to the IPv6 one.
    const std::vector<aem::SocketAddress> addresses = {refusing, refusing, good};
    auto stream = aem::TcpStream::connect(addresses, 10s, {.attempt_delay = 1h});
    REQUIRE(stream);
    CHECK(stream->peer_address().value() == good);
  });
}

TEST_CASE("net happy eyeballs: bad lists and callers are refused") {
  aem::Runtime rt(one_core());
  rt.run([] {
    CHECK(aem::TcpStream::connect(std::span<const aem::SocketAddress>{}, 1s).error() == aem::errc::invalid_argument);
    const std::vector<aem::SocketAddress> with_unix = {aem::SocketAddress::ipv4_loopback(1),
                                                      aem::SocketAddress::unix_path("@aem-no-such").value()};
    CHECK(aem::TcpStream::connect(with_unix, 1s).error() == aem::errc::invalid_argument);
    const std::vector<aem::SocketAddress> one = {aem::SocketAddress::ipv4_loopback(1)};
    CHECK(aem::TcpStream::connect(one, 1s, {.attempt_delay = -1ms}).error() == aem::errc::invalid_argument);
  });
  const std::vector<aem::SocketAddress> one = {aem::SocketAddress::ipv4_loopback(1)};
  CHECK(aem::TcpStream::connect(one, 1s).error() == aem::errc::not_in_capsule);
}

TEST_CASE("net happy eyeballs: a runtime that stops ends the attempts with shutting_down and closes them") {
  const int before = open_descriptors();
  std::error_code error;
  {
    aem::Runtime rt(one_core());
    rt.run([&] {
      auto hole = std::make_shared<std::optional<Unanswered>>(make_unanswered());
      if (!*hole) {
        error = aem::errc::shutting_down;
        return;
      }
      bool started = false;
      auto racer = aem::spawn([hole, &started, &error] {
        const std::vector<aem::SocketAddress> addresses = {(*hole)->address, (*hole)->address};
        started = true;
        error = aem::TcpStream::connect(addresses, {}, {.attempt_delay = 1ms}).error();  // only the stop ends it
      });
      REQUIRE(racer);
      racer->detach();
      while (!started) aem::this_capsule::yield();
      aem::this_capsule::sleep_for(20ms);  // the attempts are under way (either way the stop ends them)
    });
  }
  CHECK(error == aem::errc::shutting_down);
  CHECK(open_descriptors() == before);
}
