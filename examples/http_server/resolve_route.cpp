// resolve_route.cpp — GET|HEAD /resolve?name=<host>: the addresses of a host name, one per
// line, looked up with aem::resolve. The lookup (getaddrinfo) runs on the runtime's pool for
// blocking calls: only this connection waits for it, the core serves the others meanwhile.
//   200  the addresses (IPv4 and IPv6, numeric, in the resolver's order of preference)
//   400  no name= parameter, an empty name or a malformed percent-escape
//   404  the name does not exist or has no address (resolve_errc::host_not_found, no_address)
//   504  the lookup did not finish within kResolveTimeout
//   502  any other lookup failure (the name server failed, the pool refused the call, …)
// Every error's body is the error's message.
#include "request_path.hpp"
#include "session.hpp"

#include <aem/net/resolve.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <array>
#include <optional>

namespace http {
namespace {

// kResolveTimeout bounds a lookup well inside the request timeout, so a slow name server
// answers 504 instead of having the connection swept.
constexpr aem::Duration kResolveTimeout = 5s;
constexpr std::size_t kMaxName = 255;  // a DNS name's longest text form, and a little more

// query_value returns the percent-decoded value of `key` in a query ("a=1&name=x"); nothing when
// the key is absent or its value is malformed.
std::optional<std::string> query_value(std::string_view query, std::string_view key) {
  while (!query.empty()) {
    const std::size_t end = query.find('&');
    const std::string_view pair = query.substr(0, end);
    query = end == std::string_view::npos ? std::string_view() : query.substr(end + 1);
    if (!pair.starts_with(key) || pair.size() <= key.size() || pair[key.size()] != '=') continue;
    std::array<char, kMaxName + 1> decoded{};
    const long length = decode_percent(pair.substr(key.size() + 1), decoded);
    if (length < 0) return std::nullopt;
    return std::string(decoded.data(), static_cast<std::size_t>(length));
  }
  return std::nullopt;
}

// host_text prints an address without its port (getaddrinfo without a service leaves it 0).
std::string host_text(const aem::SocketAddress& address) {
  char text[INET6_ADDRSTRLEN] = {};
  const void* raw = address.family() == aem::AddressFamily::ipv4
                        ? static_cast<const void*>(&reinterpret_cast<const sockaddr_in*>(address.data())->sin_addr)
                        : static_cast<const void*>(&reinterpret_cast<const sockaddr_in6*>(address.data())->sin6_addr);
  if (::inet_ntop(address.os_family(), raw, text, sizeof text) == nullptr) return address.to_string();
  return text;
}

std::uint16_t status_of(std::error_code error) {
  if (error == aem::resolve_errc::host_not_found || error == aem::resolve_errc::no_address) return 404;
  if (error == aem::errc::invalid_argument) return 400;
  if (error == aem::errc::timed_out) return 504;
  return 502;
}

}  // namespace

void Session::answer_resolve() {
  std::uint16_t status = 200;
  std::string body;
  const std::optional<std::string> name = query_value(exchange_.query, "name");
  if (!name || name->empty()) {
    status = 400;
    body = "usage: /resolve?name=<host>\n";
  } else if (auto addresses = aem::resolve(*name, "", {.deadline = kResolveTimeout}); !addresses) {
    status = status_of(addresses.error());
    body = addresses.error().message() + "\n";
  } else {
    for (const aem::SocketAddress& address : *addresses) body += host_text(address) + "\n";
  }
  if (!write_head(status, "text/plain; charset=utf-8", body.size()) || exchange_.head_only) return;
  const std::span<char> space = output_space(body.size());
  if (space.size() >= body.size()) output_.append(body);
  else if (flush()) (void)write_all(body);
}

}  // namespace http
