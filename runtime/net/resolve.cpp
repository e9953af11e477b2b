// resolve.cpp — aem::resolve: getaddrinfo on the thread pool for blocking calls, its EAI_*
// results as resolve_errc codes, and the numeric hosts that need no lookup.
#include <aem/blocking.hpp>
#include <aem/error.hpp>
#include <aem/net/resolve.hpp>

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <optional>
#include <string>
#include <utility>

namespace aem {
namespace {

// eai_of gives each resolve_errc the EAI_* value whose gai_strerror text is its message.
int eai_of(resolve_errc e) noexcept {
  switch (e) {
    case resolve_errc::host_not_found: return EAI_NONAME;
#ifdef EAI_NODATA
    case resolve_errc::no_address: return EAI_NODATA;
#endif
    case resolve_errc::try_again: return EAI_AGAIN;
    case resolve_errc::server_failure: return EAI_FAIL;
    case resolve_errc::service_not_found: return EAI_SERVICE;
    case resolve_errc::family_not_supported: return EAI_FAMILY;
    case resolve_errc::socket_type_not_supported: return EAI_SOCKTYPE;
    case resolve_errc::bad_flags: return EAI_BADFLAGS;
    case resolve_errc::out_of_memory: return EAI_MEMORY;
    case resolve_errc::overflow: return EAI_OVERFLOW;
    default: return 0;
  }
}

resolve_errc from_eai(int eai) noexcept {
  switch (eai) {
    case EAI_NONAME: return resolve_errc::host_not_found;
#ifdef EAI_NODATA
    case EAI_NODATA: return resolve_errc::no_address;
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY: return resolve_errc::no_address;
#endif
    case EAI_AGAIN: return resolve_errc::try_again;
    case EAI_FAIL: return resolve_errc::server_failure;
    case EAI_SERVICE: return resolve_errc::service_not_found;
    case EAI_FAMILY: return resolve_errc::family_not_supported;
    case EAI_SOCKTYPE: return resolve_errc::socket_type_not_supported;
    case EAI_BADFLAGS: return resolve_errc::bad_flags;
    case EAI_MEMORY: return resolve_errc::out_of_memory;
    case EAI_OVERFLOW: return resolve_errc::overflow;
    default: return resolve_errc::other;
  }
}

class ResolveCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "aem.resolve"; }
  std::string message(int value) const override {
    const auto e = static_cast<resolve_errc>(value);
    if (e == resolve_errc::no_address && eai_of(e) == 0) return "no address associated with the name";
    if (const int eai = eai_of(e); eai != 0) return ::gai_strerror(eai);
    if (e == resolve_errc::other) return "name resolution failed";
    return "unknown aem.resolve error " + std::to_string(value);
  }
};

// Lookup is what one getaddrinfo call found: the addresses, or its error.
struct Lookup {
  std::vector<SocketAddress> addresses;
  std::error_code error;
};

void add_unique(std::vector<SocketAddress>& addresses, const SocketAddress& address) {
  if (std::find(addresses.begin(), addresses.end(), address) == addresses.end()) addresses.push_back(address);
}

// lookup runs getaddrinfo: it blocks, so it runs on the thread pool. Every input is its own
// copy, because after a timeout the call finishes with nobody waiting.
Lookup lookup(const std::string& host, const std::string& service, addrinfo hints) {
  Lookup found;
  addrinfo* list = nullptr;
  const int eai = ::getaddrinfo(host.c_str(), service.empty() ? nullptr : service.c_str(), &hints, &list);
  if (eai != 0) {
    found.error = eai == EAI_SYSTEM ? errno_code(errno) : make_error_code(from_eai(eai));
    return found;
  }
  for (const addrinfo* entry = list; entry != nullptr; entry = entry->ai_next) {
    // A family the library cannot hold (none today) is skipped rather than failing the rest.
    if (Result<SocketAddress> address = SocketAddress::from_sockaddr(entry->ai_addr, entry->ai_addrlen)) {
      add_unique(found.addresses, *address);
    }
  }
  ::freeaddrinfo(list);
  if (found.addresses.empty()) found.error = make_error_code(resolve_errc::no_address);
  return found;
}

// numeric_port reads a service that is a decimal port number.
std::optional<std::uint16_t> numeric_port(std::string_view service) {
  if (service.empty()) return std::uint16_t{0};
  std::uint16_t port = 0;
  const auto [end, error] = std::from_chars(service.data(), service.data() + service.size(), port);
  if (error != std::errc() || end != service.data() + service.size()) return std::nullopt;
  return port;
}

int os_family(AddressFamily family) noexcept {
  switch (family) {
    case AddressFamily::ipv4: return AF_INET;
    case AddressFamily::ipv6: return AF_INET6;
    default: return AF_UNSPEC;
  }
}

}  // namespace

const std::error_category& resolve_category() noexcept {
  static const ResolveCategory category;
  return category;
}

Result<std::vector<SocketAddress>> resolve(std::string_view host, std::string_view service,
                                           const ResolveOptions& options) {
  if (host.empty() || host.find('\0') != std::string_view::npos || service.find('\0') != std::string_view::npos) {
    return errc::invalid_argument;
  }
  if (options.family != AddressFamily::none && options.family != AddressFamily::ipv4 &&
      options.family != AddressFamily::ipv6) {
    return errc::invalid_argument;
  }
  // Refused like every blocking call, numeric hosts too: the answer does not depend on what the
  // host looks like.
  if (std::error_code refused = detail::blocking_refusal()) return refused;
  if (std::optional<std::uint16_t> port = numeric_port(service)) {
    if (Result<SocketAddress> numeric = SocketAddress::parse(host, *port)) {
      if (options.family != AddressFamily::none && numeric->family() != options.family) {
        return make_error_code(resolve_errc::no_address);
      }
      return std::vector<SocketAddress>{*numeric};
    }
  }
  addrinfo hints{};
  hints.ai_family = os_family(options.family);
  hints.ai_socktype = options.transport == Transport::udp ? SOCK_DGRAM : SOCK_STREAM;
  hints.ai_protocol = options.transport == Transport::udp ? IPPROTO_UDP : IPPROTO_TCP;
  Result<Lookup> found = blocking([host = std::string(host), service = std::string(service), hints] {
    return lookup(host, service, hints);
  }, {.deadline = options.deadline});
  if (!found) return found.error();
  if (found->error) return found->error;
  return std::move(found->addresses);
}

Result<std::vector<SocketAddress>> resolve(std::string_view host, std::uint16_t port, const ResolveOptions& options) {
  char digits[8];
  const auto [end, error] = std::to_chars(digits, digits + sizeof digits, port);
  (void)error;  // five digits always fit
  return resolve(host, std::string_view(digits, static_cast<std::size_t>(end - digits)), options);
}

}  // namespace aem
