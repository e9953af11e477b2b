// net/address.hpp — SocketAddress: an IPv4, IPv6 or Unix-domain socket address, parsed from
// and printed as text.
#pragma once

#include <aem/export.hpp>
#include <aem/result.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <sys/socket.h>

namespace aem {

// AddressFamily says what kind of address a SocketAddress holds.
enum class AddressFamily : std::uint8_t {
  none,   // default-constructed: no address
  ipv4,
  ipv6,
  local,  // Unix domain (AF_UNIX): a path, an abstract name, or unnamed
};

// SocketAddress is a value type holding one socket address (a sockaddr_storage and its length).
// Text forms: "127.0.0.1:8080", "[::1]:80", "unix:/run/app.sock", "unix:@abstract-name".
// Only numeric hosts are accepted: name resolution would block the core's thread. A host name
// ("localhost", "example.com") is refused with errc::not_numeric_address; resolve it with
// aem::resolve, which does the lookup off the core and returns SocketAddresses.
//
// Example:
//   auto address = aem::SocketAddress::parse("127.0.0.1:8080");
//   if (!address) return address.error();       // errc::invalid_argument for bad text
//   auto listener = aem::TcpListener::bind(*address);
class AEM_EXPORT SocketAddress {
 public:
  SocketAddress() noexcept;

  // parse reads one of the text forms above. Errors: errc::not_numeric_address (the host is a
  // host name, e.g. "localhost:80": use aem::resolve), errc::invalid_argument (malformed text,
  // a host that is neither an IPv4/IPv6 literal nor a host name, a port outside 0..65535),
  // std::errc::filename_too_long (a Unix path longer than sockaddr_un allows). Any thread.
  static Result<SocketAddress> parse(std::string_view text);
  // parse reads a numeric host ("10.0.0.1", "::1", "[::1]") and takes the port separately.
  // Errors: errc::not_numeric_address (a host name such as "localhost": use aem::resolve),
  // errc::invalid_argument (anything else that is not an IP literal). Any thread.
  static Result<SocketAddress> parse(std::string_view host, std::uint16_t port);
  // unix_path makes a Unix-domain address; a leading '@' names the abstract namespace (no
  // file is created). Errors: errc::invalid_argument (empty, or a NUL inside a path),
  // std::errc::filename_too_long. Any thread.
  static Result<SocketAddress> unix_path(std::string_view path);
  // from_sockaddr copies an address the kernel returned. Errors: errc::invalid_argument
  // (null, an unsupported family or a length too short for its family). Any thread.
  static Result<SocketAddress> from_sockaddr(const sockaddr* address, socklen_t length);

  // ipv4_loopback / ipv6_loopback / ipv4_any / ipv6_any: the usual bind and connect targets.
  static SocketAddress ipv4_loopback(std::uint16_t port) noexcept;
  static SocketAddress ipv6_loopback(std::uint16_t port) noexcept;
  static SocketAddress ipv4_any(std::uint16_t port) noexcept;
  static SocketAddress ipv6_any(std::uint16_t port) noexcept;

  AddressFamily family() const noexcept;
  // port returns the port of an IP address, 0 for a Unix-domain one.
  std::uint16_t port() const noexcept;
  // to_string prints the text form that parse() reads back ("" for no address, "unix:" for
  // an unnamed Unix socket).
  std::string to_string() const;

  // data and size are what bind(2), connect(2) and sendto(2) take.
  const sockaddr* data() const noexcept { return reinterpret_cast<const sockaddr*>(&storage_); }
  socklen_t size() const noexcept { return length_; }
  // os_family returns the AF_* value (AF_UNSPEC for no address).
  int os_family() const noexcept { return storage_.ss_family; }

  friend bool operator==(const SocketAddress& a, const SocketAddress& b) noexcept;

 private:
  sockaddr_storage storage_;
  socklen_t length_ = 0;
};

AEM_EXPORT bool operator==(const SocketAddress& a, const SocketAddress& b) noexcept;

}  // namespace aem
