// SocketAddress::parse reads numeric addresses only; a host name is told apart from malformed
// text and refused with errc::not_numeric_address, whose message points at aem::resolve.
#include <aem/net.hpp>

#include <doctest/doctest.h>

#include <string>

TEST_CASE("net address: a host name is not_numeric_address, and the message names aem::resolve") {
  for (const char* host : {"localhost", "example.com", "my-host.internal", "a", "xn--bcher-kva.example", "1st.example"}) {
    CAPTURE(host);
    auto address = aem::SocketAddress::parse(host, 8080);
    REQUIRE_FALSE(address);
    CHECK(address.error() == aem::errc::not_numeric_address);
    auto text = aem::SocketAddress::parse(std::string(host) + ":8080");
    REQUIRE_FALSE(text);
    CHECK(text.error() == aem::errc::not_numeric_address);
  }
  const std::string message = aem::make_error_code(aem::errc::not_numeric_address).message();
  CHECK(message.find("numeric") != std::string::npos);
  CHECK(message.find("aem::resolve") != std::string::npos);
  // Not host names: malformed text stays invalid_argument.
  for (const char* host : {"", "256.0.0.1", "1.2.3", "host name", "bad_char", "-", "a..b", ".a",
                           "fe80::1%eth0"}) {
    CAPTURE(host);
    auto address = aem::SocketAddress::parse(host, 80);
    REQUIRE_FALSE(address);
    CHECK(address.error() == aem::errc::invalid_argument);
  }
  // Numeric addresses still parse, bracketed IPv6 included.
  CHECK(aem::SocketAddress::parse("127.0.0.1", 80));
  CHECK(aem::SocketAddress::parse("[::1]", 80));
}
