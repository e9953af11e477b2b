// happy_eyeballs.hpp — connecting to whichever of several addresses answers first (RFC 8305,
// "Happy Eyeballs v2"): the attempts are staggered, not serial, so one address that drops
// SYNs costs a fraction of a second instead of a whole connect timeout. Private to the library.
#pragma once

#include <aem/net/address.hpp>
#include <aem/result.hpp>
#include <aem/time.hpp>

#include <span>
#include <vector>

namespace aem::detail {

// interleave_families orders `addresses` for connection attempts as RFC 8305 section 4 asks:
// the family of the first address first, then alternating with the other family, each family
// keeping its own order. Addresses of a family that runs out are appended in order.
std::vector<SocketAddress> interleave_families(std::span<const SocketAddress> addresses);

// connect_first connects a TCP socket to one of `addresses` (IP only, at least one): attempts
// start in interleave_families order, the next one `attempt_delay` after the previous one
// started or at once when an attempt fails; the first attempt to connect wins and the others
// are cancelled and closed. Returns the winner's descriptor, which the caller owns.
// Errors: errc::invalid_argument (no address, one that is not IP, a negative delay),
// errc::timed_out (the deadline passed first), errc::not_in_capsule,
// errc::inline_handler_blocked, errc::shutting_down, else the error of the attempt that
// failed last (std::errc::connection_refused, …). Call from a capsule.
Result<int> connect_first(std::span<const SocketAddress> addresses, Deadline deadline, Duration attempt_delay);

}  // namespace aem::detail
