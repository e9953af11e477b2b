// net/resolve.hpp — aem::resolve: host names to socket addresses, without stalling a core.
#pragma once

#include <aem/export.hpp>
#include <aem/net/address.hpp>
#include <aem/result.hpp>
#include <aem/time.hpp>

#include <cstdint>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

namespace aem {

// resolve_errc lists why a name lookup failed (the EAI_* results of getaddrinfo), as error
// codes of resolve_category(). Their messages are the C library's (gai_strerror).
//
// Example:
//   if (auto addresses = aem::resolve("db.internal", "5432"); !addresses) {
//     if (addresses.error() == aem::resolve_errc::host_not_found) { /* no such name */ }
//   }
enum class resolve_errc : int {
  host_not_found = 1,         // EAI_NONAME: the name (or the service) is not known
  no_address,                 // EAI_NODATA, EAI_ADDRFAMILY: the name has no address (of that family)
  try_again,                  // EAI_AGAIN: the name server failed for now; a later lookup may work
  server_failure,             // EAI_FAIL: the name server failed for good
  service_not_found,          // EAI_SERVICE: the service is not known for that transport
  family_not_supported,       // EAI_FAMILY
  socket_type_not_supported,  // EAI_SOCKTYPE
  bad_flags,                  // EAI_BADFLAGS
  out_of_memory,              // EAI_MEMORY
  overflow,                   // EAI_OVERFLOW
  other,                      // an EAI_* value this list does not name
};

// resolve_category returns the std::error_category of resolve_errc (name "aem.resolve"). Any
// thread.
AEM_EXPORT const std::error_category& resolve_category() noexcept;

// make_error_code wraps a resolve_errc in a std::error_code, so that `ec == resolve_errc::…`
// compiles.
inline std::error_code make_error_code(resolve_errc e) noexcept { return {static_cast<int>(e), resolve_category()}; }

// Transport says which transport a lookup is for: it picks the service's port (a service may
// be known for one transport only) and keeps getaddrinfo from listing each address once per
// socket type.
enum class Transport : std::uint8_t { tcp, udp };

// ResolveOptions tune aem::resolve.
struct ResolveOptions {
  Deadline deadline{};                          // the whole lookup: errc::timed_out after it
  AddressFamily family = AddressFamily::none;   // none: IPv4 and IPv6; ipv4 or ipv6: that one only
  Transport transport = Transport::tcp;
};

// resolve looks up `host` (a name, or a numeric IPv4/IPv6 address, "[::1]" too) for `service`
// (a port number, or a name from the services database such as "http"; empty: port 0) and
// returns its addresses in the C library's order of preference (RFC 6724), each once. A name
// is looked up by getaddrinfo on the runtime's thread pool for blocking calls (aem::blocking),
// so only the calling capsule waits; a numeric host with a numeric service is answered at once.
// When the deadline passes the call returns errc::timed_out and the lookup's late result is
// dropped. Call from a capsule.
// Errors: resolve_errc values in resolve_category() (host_not_found, try_again, …; their
// message is gai_strerror's), the errno of a system failure (EAI_SYSTEM) as a
// std::generic_category code, errc::invalid_argument (an empty host, a NUL inside the host or
// the service, a family that is not ipv4, ipv6 or none), errc::timed_out,
// errc::not_in_capsule (from a plain thread), and the errors of aem::blocking.
//
// Example (from a capsule):
//   auto addresses = aem::resolve("example.com", "https", {.deadline = 2s});
//   if (!addresses) return addresses.error();
//   auto stream = aem::TcpStream::connect(*addresses, 2s);
AEM_EXPORT Result<std::vector<SocketAddress>> resolve(std::string_view host, std::string_view service,
                                                      const ResolveOptions& options = {});
// resolve looks up `host` for a numeric `port`; otherwise as above.
AEM_EXPORT Result<std::vector<SocketAddress>> resolve(std::string_view host, std::uint16_t port,
                                                      const ResolveOptions& options = {});

}  // namespace aem

template <>
struct std::is_error_code_enum<aem::resolve_errc> : std::true_type {};
