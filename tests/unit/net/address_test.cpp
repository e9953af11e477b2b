#include <aem/net.hpp>

#include <doctest/doctest.h>

#include <netinet/in.h>
#include <string>
#include <sys/un.h>

TEST_CASE("net address: IPv4, IPv6 and Unix text forms parse and print back") {
  for (const char* text : {"127.0.0.1:8080", "0.0.0.0:0", "[::1]:80", "[2001:db8::7]:65535", "unix:/tmp/x.sock",
                           "unix:@abstract-name"}) {
    CAPTURE(text);
    auto address = aem::SocketAddress::parse(text);
    REQUIRE(address);
    CHECK(address->to_string() == text);
    auto again = aem::SocketAddress::parse(address->to_string());
    REQUIRE(again);
    CHECK(*again == *address);
  }
  auto v4 = aem::SocketAddress::parse("127.0.0.1:8080");
  CHECK(v4->family() == aem::AddressFamily::ipv4);
  CHECK(v4->port() == 8080);
  CHECK(v4->size() == sizeof(sockaddr_in));
  auto v6 = aem::SocketAddress::parse("[::1]:80");
  CHECK(v6->family() == aem::AddressFamily::ipv6);
  CHECK(v6->port() == 80);
  CHECK(*v6 == aem::SocketAddress::ipv6_loopback(80));
  auto local = aem::SocketAddress::parse("unix:/tmp/x.sock");
  CHECK(local->family() == aem::AddressFamily::local);
  CHECK(local->port() == 0);
  CHECK(aem::SocketAddress::parse("::1", 443)->to_string() == "[::1]:443");
  CHECK(aem::SocketAddress::parse("[::1]", 443)->to_string() == "[::1]:443");
  CHECK(aem::SocketAddress::ipv4_any(7).to_string() == "0.0.0.0:7");
  CHECK(aem::SocketAddress().family() == aem::AddressFamily::none);
  CHECK(aem::SocketAddress().to_string().empty());
}

TEST_CASE("net address: malformed text is errc::invalid_argument, never a crash") {
  for (const char* text : {"", ":", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:80x",
                           "127.0.0.1: 80", "256.0.0.1:80", "::1:80", "[::1]80", "[::1:80", "[127.0.0.1]:80",
                           "local_host:80", "-:443", "1.2.3.4:99999999999999999999", "unix:",
                           "[]:80", "[fe80::1%eth0]:80"}) {
    CAPTURE(text);
    auto address = aem::SocketAddress::parse(text);
    REQUIRE_FALSE(address);
    CHECK(address.error() == aem::errc::invalid_argument);
  }
  CHECK(aem::SocketAddress::parse("not an ip", 80).error() == aem::errc::invalid_argument);
  CHECK(aem::SocketAddress::parse(std::string("unix:/tmp/a\0b", 13)).error() == aem::errc::invalid_argument);
}

TEST_CASE("net address: Unix paths longer than sockaddr_un allows are filename_too_long") {
  const std::size_t limit = sizeof(sockaddr_un::sun_path);
  CHECK(aem::SocketAddress::unix_path(std::string(limit - 1, 'a')));  // room for the NUL
  CHECK(aem::SocketAddress::unix_path(std::string(limit, 'a')).error() == std::errc::filename_too_long);
  CHECK(aem::SocketAddress::unix_path("@" + std::string(limit - 1, 'a')));  // abstract: no NUL needed
  CHECK(aem::SocketAddress::unix_path("@" + std::string(limit, 'a')).error() == std::errc::filename_too_long);
}

TEST_CASE("net address: from_sockaddr checks family and length") {
  CHECK(aem::SocketAddress::from_sockaddr(nullptr, 16).error() == aem::errc::invalid_argument);
  sockaddr_in v4{};
  v4.sin_family = AF_INET;
  v4.sin_port = htons(9);
  v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const auto* raw = reinterpret_cast<const sockaddr*>(&v4);
  CHECK(aem::SocketAddress::from_sockaddr(raw, sizeof v4)->to_string() == "127.0.0.1:9");
  CHECK(aem::SocketAddress::from_sockaddr(raw, 4).error() == aem::errc::invalid_argument);
  sockaddr_storage too_long{};
  too_long.ss_family = AF_INET;
  CHECK(aem::SocketAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&too_long), sizeof too_long + 1).error() ==
        aem::errc::invalid_argument);
  sockaddr other{};
  other.sa_family = AF_PACKET;
  CHECK(aem::SocketAddress::from_sockaddr(&other, sizeof other).error() == aem::errc::invalid_argument);
}

TEST_CASE("net address: a socket of the wrong kind for the address is refused up front") {
  const aem::SocketAddress local = *aem::SocketAddress::unix_path("@aem-wrong-kind");
  const aem::SocketAddress ip = aem::SocketAddress::ipv4_loopback(0);
  CHECK(aem::TcpListener::bind(local).error() == aem::errc::invalid_argument);
  CHECK(aem::TcpListener::bind(aem::SocketAddress()).error() == aem::errc::invalid_argument);
  CHECK(aem::UnixListener::bind(ip).error() == aem::errc::invalid_argument);
  CHECK(aem::UdpSocket::bind(local).error() == aem::errc::invalid_argument);
  CHECK(aem::TcpListener::bind(ip, {.backlog = -1}).error() == aem::errc::invalid_argument);
}
