// tls/stream.hpp — Stream: a TLS connection over an aem::TcpStream, in blocking style.
#pragma once

#include <aem/detail/byte_stream_calls.hpp>
#include <aem/event_data.hpp>
#include <aem/export.hpp>
#include <aem/net/tcp.hpp>
#include <aem/result.hpp>
#include <aem/time.hpp>
#include <aem/tls/context.hpp>
#include <aem/tls/error.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <sys/uio.h>
#include <type_traits>
#include <vector>

namespace aem::tls {

namespace detail {
struct StreamState;
}  // namespace detail

// PeerCertificate describes the certificate the peer presented.
struct PeerCertificate {
  std::string subject;      // one line, RFC 2253 ("CN=localhost,O=…")
  std::string issuer;
  std::vector<std::byte> der;
};

// Stream is a TLS connection over a TcpStream it owns: the blocking-style calls of
// StreamSocket (read, read_exact, write, write_all, writev: it is an aem::ByteStream, so
// BufferedStream works over it), each with a deadline and suspending only the calling capsule.
//
// Make it with server() or client(), then handshake(); connect() does all of it for a client.
// OpenSSL encrypts into and decrypts from the stream's own buffers through a custom BIO: each
// ciphertext byte is copied once between those buffers and OpenSSL's (the socket I/O is the
// TcpStream's: io_uring or epoll); plaintext is never copied by the stream.
//
// Concurrency: one capsule may read while another writes (on any cores: a full-duplex proxy);
// two concurrent reads, or two concurrent writes, are not allowed. cancel() and close() work
// from any capsule or thread while calls block, as TcpStream's.
//
// Errors common to the blocking calls: those of the TcpStream beneath (errc::timed_out,
// errc::cancelled, errc::not_in_capsule, std::errc::connection_reset, …) and tls_category()
// codes: tls_errc::truncated when the peer closes without a close_notify, OpenSSL's reasons
// for a protocol failure. After a TLS failure (anything but a timeout or cancellation) the
// session is over: later calls return tls_errc::stream_failed; close the stream.
//
// Example (a client, from a capsule):
//   auto context = aem::tls::Context::client({.trusted_cas = {.file = "ca.pem"}});
//   auto stream = aem::tls::Stream::connect(*context, "localhost", 8443, 5s);
//   if (!stream) return stream.error();
//   (void)stream->write_all("ping\n", 5s);
//   std::array<std::byte, 64> answer;
//   auto n = stream->read(answer, 5s);       // 0: the server sent close_notify
//   (void)stream->shutdown(5s);              // our close_notify
class AEM_EXPORT Stream : public aem::detail::TextOverloads<Stream> {
 public:
  // Each of read, read_exact, write and write_all also takes a char buffer or text, as
  // StreamSocket's.
  using TextOverloads::read;
  using TextOverloads::read_exact;
  using TextOverloads::write;
  using TextOverloads::write_all;

  Stream() noexcept;
  Stream(Stream&&) noexcept;
  Stream& operator=(Stream&&) noexcept;
  ~Stream();

  // server wraps an accepted connection for a server context; nothing is sent until
  // handshake(). Any thread. Errors: errc::invalid_argument (an empty or client context, a
  // closed stream), errc::out_of_memory.
  static Result<Stream> server(const Context& context, TcpStream tcp);
  // client wraps a connection for a client context. `server_name` is sent as SNI (unless it is
  // an IP address) and, with ClientOptions::verify_peer, must match the server's certificate.
  // `resume` (from an earlier Stream::session() of the same context) asks to resume that
  // session. Any thread. Errors: as server's.
  static Result<Stream> client(const Context& context, TcpStream tcp, std::string_view server_name,
                               const Session& resume = {});
  // connect connects to host:port (TcpStream::connect: resolve + Happy Eyeballs) and runs the
  // client handshake, all before `deadline`. Call from a capsule. Errors: those of
  // TcpStream::connect, client and handshake.
  static Result<Stream> connect(const Context& context, std::string_view host, std::uint16_t port,
                                Deadline deadline = {}, const Session& resume = {});

  // handshake runs the TLS handshake. A server's context may change with SNI
  // (ServerOptions::select_context). Call once, from a capsule, before reading or writing.
  // Errors: see the class; a refused certificate is_certificate_rejected(); a client's ALPN
  // refused by the server is OpenSSL's "tlsv1 alert no application protocol".
  Result<void> handshake(Deadline deadline = {});

  // read decrypts what has arrived into `buffer`, waiting for at least one byte. Returns the
  // count; 0 when the peer sent close_notify (the end of its data). Errors:
  // tls_errc::truncated when the connection ended without close_notify. Call from a capsule.
  Result<std::size_t> read(std::span<std::byte> buffer, Deadline deadline = {});
  // read_exact fills the whole buffer. Errors: errc::end_of_stream if the peer's close_notify
  // comes first. Call from a capsule.
  Result<void> read_exact(std::span<std::byte> buffer, Deadline deadline = {});

  // write encrypts and sends some of `data` (at least one byte unless it is empty) and returns
  // how much; the bytes are handed to the kernel before it returns. Call from a capsule.
  Result<std::size_t> write(std::span<const std::byte> data, Deadline deadline = {});
  // write_all writes all of `data`. After an error an unknown prefix has been sent. Capsule.
  Result<void> write_all(std::span<const std::byte> data, Deadline deadline = {});
  // writev writes some of the buffers in order (each TLS record holds bytes of one buffer).
  // Errors: errc::invalid_argument for more than IOV_MAX buffers. Capsule.
  Result<std::size_t> writev(std::span<const iovec> buffers, Deadline deadline = {});

  // shutdown sends close_notify (our end of the data; reading goes on until the peer's).
  // Idempotent. Call from a capsule. Errors: as write's.
  Result<void> shutdown(Deadline deadline = {});

  // cancel makes the calls in flight return errc::cancelled; the stream stays usable.
  // close cancels them and closes the connection (no close_notify: call shutdown first for a
  // clean end). Both: any capsule or thread, as TcpStream's.
  void cancel() noexcept;
  Result<void> close() noexcept;

  // tcp returns the connection beneath, for socket options, addresses and cancellation. Do
  // not read or write it directly: the TLS records would break.
  TcpStream& tcp() noexcept;
  const TcpStream& tcp() const noexcept;

  // The negotiated parameters (after handshake; empty before). Any thread that owns the stream.
  // alpn: the protocol both sides agreed on, or empty. version: "TLSv1.3" or "TLSv1.2".
  // cipher: OpenSSL's name of the cipher. server_name: the SNI name (as sent or received).
  // resumed: the handshake resumed an earlier session.
  std::string_view alpn() const noexcept;
  std::string_view version() const noexcept;
  std::string_view cipher() const noexcept;
  std::string_view server_name() const noexcept;
  bool resumed() const noexcept;
  // peer_certificate returns the peer's certificate (a server's always; a client's only with
  // ServerOptions::verify_clients), or nothing.
  std::optional<PeerCertificate> peer_certificate() const;
  // session returns the latest session the server handed out for resumption (a client with
  // ClientOptions::session_resumption; TLS 1.3 tickets arrive after the handshake, with the
  // first read), or an empty Session.
  Session session() const;
  // handshake_done reports whether the handshake completed.
  bool handshake_done() const noexcept;
  // close_notify_received reports whether the peer ended its data cleanly (read returned 0).
  bool close_notify_received() const noexcept;

  // decrypt feeds `ciphertext` (bytes received on tcp() by other means, such as an on_data
  // registration) to the session and calls `deliver` with each piece of plaintext it completes,
  // in order. Ciphertext the stream read itself and has not decrypted yet (what came with the
  // handshake) goes first: decrypt with no ciphertext delivers just that. Ciphertext that
  // completes no record is kept for the next call. Returns false after a close_notify (the end
  // of the peer's data). Errors: as read's (after close_notify, the bytes that follow are
  // ignored). Call on the stream's core, from a capsule, from one place at a time (a
  // registration's handler), not together with read(); writing meanwhile is fine. Output the
  // TLS layer owes the peer (a key update) is sent before it returns. Used by on_data
  // (tls/events.hpp).
  template <typename F>
  Result<bool> decrypt(std::span<const std::byte> ciphertext, F&& deliver) {
    static_assert(std::is_invocable_v<F&, EventData>, "deliver is called with EventData");
    return decrypt_to(
        ciphertext, [](void* target, EventData plain) { (*static_cast<std::remove_reference_t<F>*>(target))(std::move(plain)); },
        &deliver);
  }

 private:
  Result<bool> decrypt_to(std::span<const std::byte> ciphertext, void (*deliver)(void*, EventData), void* target);

  explicit Stream(std::unique_ptr<detail::StreamState> state) noexcept;
  std::unique_ptr<detail::StreamState> state_;
};

}  // namespace aem::tls
