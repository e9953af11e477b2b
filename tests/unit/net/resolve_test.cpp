// aem::resolve and TcpStream::connect by name: names from /etc/hosts, unknown names, numeric
// hosts, the error category, and one deadline over the lookup and the connect.
#include "support/net_helpers.hpp"
#include "unit/net/connect_helpers.hpp"

#include <aem/capsule.hpp>
#include <aem/net.hpp>
#include <aem/net/resolve.hpp>
#include <aem/runtime.hpp>

#include <doctest/doctest.h>

#include <netdb.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

bool is_loopback(const aem::SocketAddress& address) {
  return address.to_string().starts_with("127.") || address.to_string().starts_with("[::1]");
}

}  // namespace

TEST_CASE("net resolve: localhost resolves to loopback addresses, each once") {
  aem::Runtime rt(aem_test::one_core());
  rt.run([] {
    auto addresses = aem::resolve("localhost", "8080");
    REQUIRE(addresses);
    REQUIRE(!addresses->empty());
    for (const aem::SocketAddress& address : *addresses) {
      CAPTURE(address.to_string());
      CHECK(is_loopback(address));
      CHECK(address.port() == 8080);
      CHECK(std::count(addresses->begin(), addresses->end(), address) == 1);
    }
    auto ipv4 = aem::resolve("localhost", 8080, {.family = aem::AddressFamily::ipv4});
    if (ipv4) {  // a hosts file may map localhost to ::1 only
      for (const aem::SocketAddress& address : *ipv4) CHECK(address.family() == aem::AddressFamily::ipv4);
    } else {
      CHECK(ipv4.error().category() == aem::resolve_category());
    }
  });
}

TEST_CASE("net resolve: connect by name reaches a loopback listener of localhost") {
  aem::Runtime rt(aem_test::one_core());
  rt.run([] {
    // localhost may be 127.0.0.1, ::1 or both: listen on both where there are both, on one
    // port; an address without a listener is refused and the next one is tried.
    aem::TcpListener four = aem_test::loopback_listener();
    const std::uint16_t port = four.local_address().value().port();
    auto six = aem::TcpListener::bind(aem::SocketAddress::ipv6_loopback(port));
    auto stream = aem::TcpStream::connect("localhost", port, 10s);
    REQUIRE(stream);
    const aem::SocketAddress peer = stream->peer_address().value();
    CHECK(peer.port() == port);
    CHECK(is_loopback(peer));
    aem::TcpListener& listener = peer.family() == aem::AddressFamily::ipv4 ? four : six.value();
    auto accepted = listener.accept(10s);
    REQUIRE(accepted);
    REQUIRE(stream->write_all(aem_test::as_bytes("by name"), 10s));
    std::array<std::byte, 7> buffer{};
    REQUIRE(accepted->read_exact(buffer, 10s));
    CHECK(aem_test::as_string(buffer) == "by name");
  });
}

TEST_CASE("net resolve: an unknown name is host_not_found in the resolve category, with a readable message") {
  aem::Runtime rt(aem_test::one_core());
  rt.run([] {
    auto addresses = aem::resolve("no-such-host.invalid", "80", {.deadline = 20s});
    REQUIRE(!addresses);
    const std::error_code error = addresses.error();
    CHECK(error.category() == aem::resolve_category());
    CHECK(std::string(error.category().name()) == "aem.resolve");
    CAPTURE(error.message());
    CHECK(!error.message().empty());
    CHECK(error.message().find("unknown") == std::string::npos);
    if (error == aem::resolve_errc::try_again) {
      MESSAGE("the name server did not answer (" << error.message() << "): not-found not checked");
      return;
    }
    CHECK(error == aem::resolve_errc::host_not_found);
    CHECK(error.message() == ::gai_strerror(EAI_NONAME));
    auto stream = aem::TcpStream::connect("no-such-host.invalid", 80, 20s);
    REQUIRE(!stream);
    CHECK(stream.error() == aem::resolve_errc::host_not_found);
  });
}

TEST_CASE("net resolve: numeric hosts are answered without a lookup") {
  aem::Runtime rt(aem_test::one_core());
  rt.run([] {
    // A deadline already past: a lookup would time out, a numeric host needs none.
    const aem::Deadline past = aem::Clock::now() - 1s;
    auto four = aem::resolve("127.0.0.1", 8080, {.deadline = past});
    REQUIRE(four);
    CHECK(*four == std::vector<aem::SocketAddress>{aem::SocketAddress::ipv4_loopback(8080)});
    auto six = aem::resolve("::1", "443", {.deadline = past});
    REQUIRE(six);
    CHECK(*six == std::vector<aem::SocketAddress>{aem::SocketAddress::ipv6_loopback(443)});
    auto bracketed = aem::resolve("[::1]", "", {.deadline = past});
    REQUIRE(bracketed);
    CHECK(*bracketed == std::vector<aem::SocketAddress>{aem::SocketAddress::ipv6_loopback(0)});
    auto wrong_family = aem::resolve("127.0.0.1", 80, {.deadline = past, .family = aem::AddressFamily::ipv6});
    REQUIRE(!wrong_family);
    CHECK(wrong_family.error() == aem::resolve_errc::no_address);
    // A name with the same deadline does need the lookup, and times out.
    CHECK(aem::resolve("localhost", 80, {.deadline = past}).error() == aem::errc::timed_out);
  });
}

TEST_CASE("net resolve: service names come from the services database") {
  aem::Runtime rt(aem_test::one_core());
  rt.run([] {
    if (::getservbyname("http", "tcp") == nullptr) {
      MESSAGE("no services database here: skipped");
      return;
    }
    auto addresses = aem::resolve("127.0.0.1", "http");
    REQUIRE(addresses);
    CHECK(*addresses == std::vector<aem::SocketAddress>{aem::SocketAddress::ipv4_loopback(80)});
    auto unknown = aem::resolve("127.0.0.1", "no-such-service-aem");
    REQUIRE(!unknown);
    CHECK(unknown.error() == aem::resolve_errc::service_not_found);
  });
}

TEST_CASE("net resolve: bad input and plain threads are refused") {
  aem::Runtime rt(aem_test::one_core());
  rt.run([] {
    CHECK(aem::resolve("", "80").error() == aem::errc::invalid_argument);
    CHECK(aem::resolve(std::string_view("local\0host", 10), "80").error() == aem::errc::invalid_argument);
    CHECK(aem::resolve("localhost", std::string_view("8\0", 2)).error() == aem::errc::invalid_argument);
    CHECK(aem::resolve("localhost", 80, {.family = aem::AddressFamily::local}).error() == aem::errc::invalid_argument);
  });
  CHECK(aem::resolve("localhost", "80").error() == aem::errc::not_in_capsule);
  CHECK(aem::resolve("127.0.0.1", "80").error() == aem::errc::not_in_capsule);
  CHECK(aem::TcpStream::connect("localhost", 80, 1s).error() == aem::errc::not_in_capsule);
}

TEST_CASE("net resolve: connect by name: refused, and one deadline for the lookup and the connect") {
  aem::Runtime rt(aem_test::one_core());
  rt.run([] {
    aem_test::RefusingPort refusing;
    CHECK(aem::TcpStream::connect("127.0.0.1", refusing.address().port(), 10s).error() == std::errc::connection_refused);
    std::optional<aem_test::Unanswered> hole = aem_test::make_unanswered();
    if (!hole) return;  // skipped
    aem_test::check_fails_closing_all(aem::errc::timed_out,
                                      [&] { return aem::TcpStream::connect("localhost", hole->address.port(), 200ms); });
  });
}
