// address.cpp — SocketAddress: text ↔ sockaddr, numeric hosts only (host names are told apart,
// to point their callers at aem::resolve).
#include <aem/net/address.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <charconv>
#include <cstddef>
#include <cstring>

namespace aem {
namespace {

constexpr std::string_view kUnixPrefix = "unix:";
constexpr std::size_t kMaxPath = sizeof(sockaddr_un::sun_path);

// parse_port reads a decimal port: digits only, 0..65535.
bool parse_port(std::string_view text, std::uint16_t& port) {
  if (text.empty() || text.size() > 5) return false;
  unsigned value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value > 65535) return false;
  port = static_cast<std::uint16_t>(value);
  return true;
}

// inet_pton wants a NUL-terminated string: copy the host into a bounded buffer.
bool host_to_binary(int family, std::string_view host, void* out) {
  char text[INET6_ADDRSTRLEN];
  if (host.empty() || host.size() >= sizeof text) return false;
  std::memcpy(text, host.data(), host.size());
  text[host.size()] = '\0';
  return ::inet_pton(family, text, out) == 1;
}

// looks_like_host_name tells whether `host` has the shape of a DNS name (RFC 1123 labels of
// letters, digits and hyphens, dot-separated, a letter somewhere): text that a resolver would
// look up, as opposed to text that is simply malformed.
bool looks_like_host_name(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  bool letter = false;
  std::size_t label = 0;
  for (const char c : host) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (!alpha && !(c >= '0' && c <= '9') && c != '-') return false;
    letter = letter || alpha;
    if (++label > 63) return false;
  }
  return letter;
}

}  // namespace

SocketAddress::SocketAddress() noexcept : storage_{} {}

Result<SocketAddress> SocketAddress::parse(std::string_view host, std::uint16_t port) {
  SocketAddress address;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  auto* v4 = reinterpret_cast<sockaddr_in*>(&address.storage_);
  if (host_to_binary(AF_INET, host, &v4->sin_addr)) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    address.length_ = sizeof(sockaddr_in);
    return address;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&address.storage_);
  if (host_to_binary(AF_INET6, host, &v6->sin6_addr)) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    address.length_ = sizeof(sockaddr_in6);
    return address;
  }
  // A host name is not malformed, only not for this call: say where it goes.
  return looks_like_host_name(host) ? errc::not_numeric_address : errc::invalid_argument;
}

Result<SocketAddress> SocketAddress::parse(std::string_view text) {
  if (text.substr(0, kUnixPrefix.size()) == kUnixPrefix) return unix_path(text.substr(kUnixPrefix.size()));
  // "host:port" or "[v6-host]:port": the port follows the last colon; an IPv6 host must be
  // bracketed, otherwise its own colons make the split ambiguous.
  const std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return errc::invalid_argument;
  const std::string_view host = text.substr(0, colon);
  std::uint16_t port = 0;
  if (!parse_port(text.substr(colon + 1), port)) return errc::invalid_argument;
  const bool bracketed = !host.empty() && host.front() == '[';
  if (!bracketed && host.find(':') != std::string_view::npos) return errc::invalid_argument;
  Result<SocketAddress> address = parse(host, port);
  if (address && bracketed && address->family() != AddressFamily::ipv6) return errc::invalid_argument;
  return address;
}

Result<SocketAddress> SocketAddress::unix_path(std::string_view path) {
  if (path.empty()) return errc::invalid_argument;
  const bool abstract = path.front() == '@';
  if (!abstract && path.find('\0') != std::string_view::npos) return errc::invalid_argument;
  // A path needs its terminating NUL inside sun_path; an abstract name is counted by length.
  if (path.size() + (abstract ? 0 : 1) > kMaxPath) return make_error_code(std::errc::filename_too_long);
  SocketAddress address;
  auto* un = reinterpret_cast<sockaddr_un*>(&address.storage_);
  un->sun_family = AF_UNIX;
  std::memcpy(un->sun_path, path.data(), path.size());
  if (abstract) un->sun_path[0] = '\0';
  address.length_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (abstract ? 0 : 1));
  return address;
}

Result<SocketAddress> SocketAddress::from_sockaddr(const sockaddr* source, socklen_t length) {
  if (source == nullptr || length < static_cast<socklen_t>(sizeof(sa_family_t))) return errc::invalid_argument;
  socklen_t needed = 0;
  switch (source->sa_family) {
    case AF_INET: needed = sizeof(sockaddr_in); break;
    case AF_INET6: needed = sizeof(sockaddr_in6); break;
    case AF_UNIX: needed = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path)); break;
    default: return errc::invalid_argument;
  }
  if (length < needed || length > static_cast<socklen_t>(sizeof(sockaddr_storage))) return errc::invalid_argument;
  SocketAddress address;
  std::memcpy(&address.storage_, source, length);
  address.length_ = source->sa_family == AF_UNIX ? length : needed;
  return address;
}

namespace {

SocketAddress make_ipv4(std::uint32_t host, std::uint16_t port) noexcept {
  sockaddr_in v4{};
  v4.sin_family = AF_INET;
  v4.sin_port = htons(port);
  v4.sin_addr.s_addr = htonl(host);
  return *SocketAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&v4), sizeof v4);
}

SocketAddress make_ipv6(const in6_addr& host, std::uint16_t port) noexcept {
  sockaddr_in6 v6{};
  v6.sin6_family = AF_INET6;
  v6.sin6_port = htons(port);
  v6.sin6_addr = host;
  return *SocketAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&v6), sizeof v6);
}

}  // namespace

SocketAddress SocketAddress::ipv4_loopback(std::uint16_t port) noexcept { return make_ipv4(INADDR_LOOPBACK, port); }
SocketAddress SocketAddress::ipv4_any(std::uint16_t port) noexcept { return make_ipv4(INADDR_ANY, port); }
SocketAddress SocketAddress::ipv6_loopback(std::uint16_t port) noexcept { return make_ipv6(in6addr_loopback, port); }
SocketAddress SocketAddress::ipv6_any(std::uint16_t port) noexcept { return make_ipv6(in6addr_any, port); }

AddressFamily SocketAddress::family() const noexcept {
  switch (storage_.ss_family) {
    case AF_INET: return AddressFamily::ipv4;
    case AF_INET6: return AddressFamily::ipv6;
    case AF_UNIX: return AddressFamily::local;
    default: return AddressFamily::none;
  }
}

std::uint16_t SocketAddress::port() const noexcept {
  switch (storage_.ss_family) {
    case AF_INET: return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
    case AF_INET6: return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
    default: return 0;
  }
}

std::string SocketAddress::to_string() const {
  char host[INET6_ADDRSTRLEN] = {};
  switch (storage_.ss_family) {
    case AF_INET:
      ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr, host, sizeof host);
      return std::string(host) + ':' + std::to_string(port());
    case AF_INET6:
      ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_addr, host, sizeof host);
      return '[' + std::string(host) + "]:" + std::to_string(port());
    case AF_UNIX: {
      const auto* un = reinterpret_cast<const sockaddr_un*>(&storage_);
      const std::size_t offset = offsetof(sockaddr_un, sun_path);
      std::size_t size = length_ > offset ? length_ - offset : 0;
      if (size == 0) return std::string(kUnixPrefix);
      if (un->sun_path[0] == '\0') return std::string(kUnixPrefix) + '@' + std::string(un->sun_path + 1, size - 1);
      return std::string(kUnixPrefix) + std::string(un->sun_path, ::strnlen(un->sun_path, size));
    }
    default: return {};
  }
}

bool operator==(const SocketAddress& a, const SocketAddress& b) noexcept {
  return a.length_ == b.length_ && std::memcmp(&a.storage_, &b.storage_, a.length_) == 0;
}

}  // namespace aem
