// net/tcp.hpp — TCP: TcpStream (a connection) and TcpListener (accepts connections).
#pragma once

#include <aem/export.hpp>
#include <aem/net/address.hpp>
#include <aem/net/listener.hpp>
#include <aem/net/resolve.hpp>  // the errors of connect by name
#include <aem/net/socket.hpp>
#include <aem/net/stream.hpp>
#include <aem/result.hpp>
#include <aem/time.hpp>

#include <chrono>
#include <cstdint>
#include <span>
#include <string_view>

namespace aem {

// ConnectOptions tune a connect to several addresses (TcpStream::connect over a list or a
// host name), which follows RFC 8305 ("Happy Eyeballs"): the attempts are staggered, so an
// address that does not answer delays the connection by attempt_delay, not by a timeout.
struct ConnectOptions {
  // attempt_delay is how long an attempt runs alone before the next address is tried as well
  // (RFC 8305's "Connection Attempt Delay": 250 ms recommended, 100 ms at least on the open
  // Internet). An attempt that fails starts the next one at once. Zero starts every attempt
  // together; a negative value is errc::invalid_argument.
  Duration attempt_delay = std::chrono::milliseconds(250);
};

// TcpStream is a TCP connection: a move-only owner of its socket (closed on destruction) with
// the blocking-style reads and writes of StreamSocket.
//
// Example (from a capsule):
//   auto stream = aem::TcpStream::connect(*aem::SocketAddress::parse("127.0.0.1:8080"), 5s);
//   if (!stream) return stream.error();
//   (void)stream->set_nodelay(true);
//   if (auto sent = stream->write_all(request); !sent) return sent.error();
class AEM_EXPORT TcpStream : public StreamSocket {
 public:
  TcpStream() noexcept = default;
  // TcpStream adopts a connected TCP socket (for instance one passed in by a supervisor); it
  // should be non-blocking. Any thread.
  explicit TcpStream(int fd) noexcept : StreamSocket(fd) {}

  // connect opens a connection to `address` (IPv4 or IPv6). Call from a capsule.
  // Errors: errc::invalid_argument (not an IP address), errc::timed_out, errc::not_in_capsule,
  // errc::shutting_down, or the errno of socket/connect (std::errc::connection_refused,
  // std::errc::network_unreachable, …).
  static Result<TcpStream> connect(const SocketAddress& address, Deadline deadline = {});
  // connect opens a connection to the first of `addresses` (IPv4 and IPv6) that answers, with
  // the staggered attempts of RFC 8305: IPv6 and IPv4 addresses alternate (the family of the
  // first address first, each family in its given order), each attempt starts
  // options.attempt_delay after the previous one or as soon as one fails, the first to connect
  // wins and the others are cancelled and closed. One deadline covers all of it. Call from a
  // capsule. Errors: errc::invalid_argument (an empty list, an address that is not IP, a
  // negative attempt_delay), errc::timed_out, errc::not_in_capsule, errc::shutting_down, or,
  // when every address fails, the error of the last to fail (std::errc::connection_refused, …).
  //
  // Example (from a capsule):
  //   std::vector<aem::SocketAddress> replicas = {a, b, c};
  //   auto stream = aem::TcpStream::connect(replicas, 5s, {.attempt_delay = 100ms});
  static Result<TcpStream> connect(std::span<const SocketAddress> addresses, Deadline deadline = {},
                                   const ConnectOptions& options = {});
  // connect resolves `host` (a name, or a numeric IPv4/IPv6 address) with aem::resolve and
  // connects to `port` on the addresses it returns, as the list overload above; one deadline
  // covers the lookup and the connect. Call from a capsule. Errors: those of aem::resolve
  // (resolve_errc::host_not_found, …, in resolve_category()) and of the list overload.
  //
  // Example (from a capsule):
  //   auto stream = aem::TcpStream::connect("localhost", 8080, 5s);
  static Result<TcpStream> connect(std::string_view host, std::uint16_t port, Deadline deadline = {},
                                   const ConnectOptions& options = {});

  // set_nodelay sets TCP_NODELAY: small writes go out at once instead of being coalesced.
  // Any thread. Errors: the errno of setsockopt.
  Result<void> set_nodelay(bool on);
  // set_keepalive enables keep-alive probes after `idle` without traffic (SO_KEEPALIVE and
  // TCP_KEEPIDLE, whole seconds, at least 1), or disables them when `on` is false. Any thread.
  Result<void> set_keepalive(bool on, std::chrono::seconds idle = std::chrono::seconds(7200));
};

// TcpListener accepts TCP connections.
//
// Example (from a capsule):
//   auto listener = aem::TcpListener::bind(aem::SocketAddress::ipv4_loopback(8080));
//   if (!listener) return listener.error();
//   while (auto stream = listener->accept()) {
//     (void)aem::spawn([s = std::move(*stream)]() mutable { serve(s); });
//   }
class AEM_EXPORT TcpListener : public ListenerSocket {
 public:
  TcpListener() noexcept = default;

  // bind creates a listening socket on `address` (port 0: the kernel picks one; see
  // local_address()). Not blocking: any thread. Errors: errc::invalid_argument (not an IP
  // address, or options.backlog < 0), the errno of socket/setsockopt/bind/listen
  // (std::errc::address_in_use, std::errc::permission_denied, …).
  static Result<TcpListener> bind(const SocketAddress& address, const BindOptions& options = {});

  // adopt takes ownership of `fd`, a listening TCP socket made elsewhere: one a predecessor
  // handed over (aem::Handover), or one a supervisor such as systemd passed in. It is made
  // non-blocking and close-on-exec (the non-blocking flag belongs to the open socket, so other
  // processes that share it see it too). Any thread. Errors: errc::invalid_argument (not a
  // listening TCP socket; `fd` is then left open), the errno of getsockopt/fcntl.
  static Result<TcpListener> adopt(int fd);

  // accept waits for the next connection. Call from a capsule. When the process is out of
  // descriptors or memory (EMFILE, ENFILE, ENOMEM, ENOBUFS) it does not fail: it pauses 1 ms,
  // doubling up to 128 ms while the shortage lasts, and tries again until the deadline; each
  // pause is counted in CoreMetrics::accept_backoffs and raised as an on_error event
  // (Subsystem::accept). Errors: as StreamSocket's blocking calls (errc::timed_out,
  // errc::cancelled after close()), and the other errors of accept4.
  Result<TcpStream> accept(Deadline deadline = {}) { return accept_as<TcpStream>(deadline, nullptr); }
  // accept also reports the peer's address in `peer`.
  Result<TcpStream> accept(SocketAddress& peer, Deadline deadline = {}) { return accept_as<TcpStream>(deadline, &peer); }

 private:
  explicit TcpListener(int fd) noexcept : ListenerSocket(fd) {}
};

}  // namespace aem
