#include "support/cores.hpp"
#include "support/net_helpers.hpp"
#include "support/sync_helpers.hpp"

#include <aem/capsule.hpp>
#include <aem/net.hpp>
#include <aem/runtime.hpp>

#include <doctest/doctest.h>

#include <array>
#include <string>
#include <unistd.h>

using namespace std::chrono_literals;
using aem_test::as_bytes;
using aem_test::as_string;

namespace {

// echo_once accepts one connection and echoes it until the peer shuts down its side.
void echo_once(aem::UnixListener& listener) {
  auto stream = listener.accept(10s);
  REQUIRE(stream);
  CHECK(aem_test::echo_until_end(*stream));
}

void round_trip(const aem::SocketAddress& address) {
  auto listener = aem::UnixListener::bind(address);
  REQUIRE(listener);
  CHECK(listener->local_address().value() == address);
  auto server = aem_test::spawn_on(1, [&] { echo_once(*listener); });
  auto client = aem::UnixStream::connect(address, 10s);
  REQUIRE(client);
  REQUIRE(client->write_all(as_bytes("over a unix socket"), 10s));
  REQUIRE(client->shutdown(aem::Shutdown::write));
  CHECK(aem_test::read_to_end(*client, 8).first == "over a unix socket");
  server.join();
}

}  // namespace

TEST_CASE("net unix: stream echo over an abstract name and over a path") {
  aem::Runtime rt(aem_test::config_for(2));
  rt.run([] {
    round_trip(*aem::SocketAddress::unix_path("@aem-net-test-" + std::to_string(::getpid())));
    const std::string path = "/tmp/aem-net-test-" + std::to_string(::getpid()) + ".sock";
    ::unlink(path.c_str());
    round_trip(*aem::SocketAddress::unix_path(path));
    // The file stays after close: binding again reports it.
    CHECK(aem::UnixListener::bind(*aem::SocketAddress::unix_path(path)).error() == std::errc::address_in_use);
    ::unlink(path.c_str());
  });
}

TEST_CASE("net unix: pair, deadlines and connect errors") {
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([] {
    auto pair = aem::UnixStream::pair();
    REQUIRE(pair);
    std::array<std::byte, 3> buffer{};
    CHECK(pair->first.read(buffer, 5ms).error() == aem::errc::timed_out);
    REQUIRE(pair->second.write_all(as_bytes("abc"), 10s));
    REQUIRE(pair->first.read_exact(buffer, 10s));
    CHECK(as_string(buffer) == "abc");
    CHECK(aem::UnixStream::connect(*aem::SocketAddress::unix_path("/nonexistent/aem.sock"), 1s).error() ==
          std::errc::no_such_file_or_directory);
    CHECK(aem::UnixStream::connect(*aem::SocketAddress::unix_path("@aem-nobody-listens"), 1s).error() ==
          std::errc::connection_refused);
    CHECK(aem::UnixStream::connect(aem::SocketAddress::ipv4_loopback(1), 1s).error() == aem::errc::invalid_argument);
  });
}
