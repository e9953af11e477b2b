// tls/events.hpp — on_data over a TLS stream: the AEM-style registration of net/events.hpp,
// delivering decrypted bytes.
#pragma once

#include <aem/error.hpp>
#include <aem/event_data.hpp>
#include <aem/event_id.hpp>
#include <aem/net/events.hpp>
#include <aem/net/stream.hpp>
#include <aem/result.hpp>
#include <aem/tls/stream.hpp>

#include <memory>
#include <type_traits>
#include <utility>

namespace aem::tls {

// on_data runs `handler(EventData)` with the plaintext of each TLS record that arrives on
// `stream`, in order: an aem::on_data registration on stream->tcp() whose handler decrypts each
// receive (Stream::decrypt) and passes on each record's plaintext in a block of its exact size.
// The handshake must be done before (Stream::handshake, in a capsule). Application data that
// arrived together with the handshake is delivered first, by on_data itself in the calling
// capsule, before the registration is made; every later byte comes through activations. The registration holds `stream` (the handler owns the
// shared_ptr) and ends with the connection: after the peer's close_notify
// (stream->close_notify_received() is then true), when the TCP stream ends (a truncation), or
// after a TLS error (the socket is shut down in both directions). Writing answers from the
// handler with stream->write_all is fine (Executor::keepalive keeps one activation at a time, in
// order). Call from a capsule on the core that serves the stream.
// Errors: tls_errc::handshake_required, errc::invalid_argument (no stream), and those of
// aem::on_data.
//
// Example (after accepting and handshaking in a capsule):
//   auto tls_stream = std::make_shared<aem::tls::Stream>(std::move(*stream));
//   (void)aem::tls::on_data(tls_stream, [tls_stream](aem::EventData plain) {
//     (void)tls_stream->write_all(plain.bytes(), 5s);   // echo
//   }, {.exec = aem::Executor::keepalive});
template <typename F>
Result<EventId> on_data(std::shared_ptr<Stream> stream, F&& handler, SocketEventOptions options = {}) {
  static_assert(std::is_invocable_v<std::decay_t<F>&, EventData>, "a TLS data handler is called with EventData");
  if (!stream) return errc::invalid_argument;
  if (!stream->handshake_done()) return make_error_code(tls_errc::handshake_required);
  // What came with the handshake (a TLS 1.3 client sends its first data with its Finished) is
  // read already: deliver it first, from the calling capsule, before any receive can start.
  Result<bool> early = stream->decrypt({}, [&handler](EventData plain) { handler(std::move(plain)); });
  if (!early) return early.error();
  const StreamSocket& socket = stream->tcp();
  return aem::on_data(
      socket,
      [stream, handler = std::forward<F>(handler)](EventData ciphertext) mutable {
        Result<bool> more = stream->decrypt(ciphertext.bytes(), [&handler](EventData plain) { handler(std::move(plain)); });
        // The end of the TLS data, or a failure: end the registration (its receive sees the end).
        if (!more) (void)stream->tcp().shutdown(Shutdown::both);
        else if (!*more) (void)stream->tcp().shutdown(Shutdown::read);
      },
      options);
}

}  // namespace aem::tls
