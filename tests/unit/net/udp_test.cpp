#include "support/cores.hpp"
#include "support/net_helpers.hpp"

#include <aem/capsule.hpp>
#include <aem/net.hpp>
#include <aem/runtime.hpp>

#include <doctest/doctest.h>

#include <array>

using namespace std::chrono_literals;
using aem_test::as_bytes;
using aem_test::as_string;

TEST_CASE("net udp: send_to and recv_from carry datagrams and the sender's address") {
  aem::Runtime rt(aem_test::config_for(2));
  rt.run([] {
    auto a = aem::UdpSocket::bind(aem::SocketAddress::ipv4_loopback(0));
    auto b = aem::UdpSocket::bind(aem::SocketAddress::ipv4_loopback(0));
    REQUIRE(a);
    REQUIRE(b);
    const aem::SocketAddress a_address = a->local_address().value();
    const aem::SocketAddress b_address = b->local_address().value();
    CHECK(a->send_to(as_bytes("ping"), b_address, 10s).value() == 4);
    std::array<std::byte, 64> buffer{};
    auto got = b->recv_from(buffer, 10s);
    REQUIRE(got);
    CHECK(got->size == 4);
    CHECK_FALSE(got->truncated);
    CHECK(got->from == a_address);
    CHECK(as_string(std::span(buffer).first(got->size)) == "ping");
    // Reply to whoever sent it.
    REQUIRE(b->send_to(as_bytes("pong"), got->from, 10s));
    auto reply = a->recv_from(buffer, 10s);
    REQUIRE(reply);
    CHECK(reply->from == b_address);
    CHECK(as_string(std::span(buffer).first(reply->size)) == "pong");
  });
}

TEST_CASE("net udp: connected sockets use send and recv: long datagrams report truncation") {
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([] {
    auto a = aem::UdpSocket::bind(aem::SocketAddress::ipv4_loopback(0));
    auto b = aem::UdpSocket::bind(aem::SocketAddress::ipv4_loopback(0));
    REQUIRE(a);
    REQUIRE(b);
    REQUIRE(a->connect(b->local_address().value()));
    REQUIRE(b->connect(a->local_address().value()));
    CHECK(a->send(as_bytes("0123456789"), 10s).value() == 10);
    std::array<std::byte, 4> small{};
    auto got = b->recv(small, 10s);
    REQUIRE(got);
    CHECK(got->truncated);
    CHECK(got->size == 4);
    CHECK(as_string(small) == "0123");
    CHECK(a->connect(aem::SocketAddress()).error() == aem::errc::invalid_argument);
    CHECK(a->send_to(as_bytes("x"), *aem::SocketAddress::unix_path("@u"), 1s).error() == aem::errc::invalid_argument);
  });
}

TEST_CASE("net udp: recv_from times out: a datagram sent later is still received") {
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([] {
    auto a = aem::UdpSocket::bind(aem::SocketAddress::ipv4_loopback(0));
    REQUIRE(a);
    std::array<std::byte, 16> buffer{};
    CHECK(a->recv_from(buffer, 5ms).error() == aem::errc::timed_out);
    REQUIRE(a->send_to(as_bytes("self"), a->local_address().value(), 10s));
    auto got = a->recv_from(buffer, 10s);
    REQUIRE(got);
    CHECK(as_string(std::span(buffer).first(got->size)) == "self");
  });
  auto outside = aem::UdpSocket::bind(aem::SocketAddress::ipv4_loopback(0));
  REQUIRE(outside);
  std::array<std::byte, 16> buffer{};
  CHECK(outside->recv_from(buffer, 1s).error() == aem::errc::not_in_capsule);
  CHECK(outside->send_to(as_bytes("x"), outside->local_address().value()).error() == aem::errc::not_in_capsule);
}
