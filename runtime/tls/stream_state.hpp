// stream_state.hpp — what a tls::Stream owns: the TcpStream, OpenSSL's SSL object and the two
// ciphertext buffers its BIO reads from and writes to. Private to the library.
//
// Locking: OpenSSL calls on one SSL object must not overlap, but a reader and a writer may use
// the stream at once (on two cores). Every OpenSSL call runs under `lock`, and never suspends:
// the BIO only copies between OpenSSL and the buffers. The socket I/O (filling `in`, sending
// `out`) runs outside the lock, by the capsule whose call needs it.
#pragma once

#include "runtime/tls/context_state.hpp"

#include <aem/detail/waiter.hpp>
#include <aem/net/tcp.hpp>
#include <aem/tls/context.hpp>

#include <openssl/ssl.h>

#include <cstddef>
#include <memory>
#include <span>
#include <string>

namespace aem::tls::detail {

// kInputCapacity holds a whole TLS record with its header (16 KiB of plaintext at most).
inline constexpr std::size_t kInputCapacity = 16 * 1024 + 512;
// kOutputCapacity holds two records: a write sends two records per system call.
inline constexpr std::size_t kOutputCapacity = 2 * (16 * 1024 + 512);

struct StreamState {
  StreamState() = default;
  StreamState(const StreamState&) = delete;
  StreamState& operator=(const StreamState&) = delete;
  ~StreamState() { SSL_free(ssl); }

  TcpStream tcp;
  Context context;   // keeps the SSL_CTX and its callbacks' state alive
  Context selected;  // the context SNI switched to (ServerOptions::select_context), if any
  SSL* ssl = nullptr;
  aem::detail::SpinLock lock;

  // Ciphertext received and not yet taken by OpenSSL: in[in_begin, in_end) first (read by the
  // stream itself, say with the handshake), then `feed` (decrypt()'s caller's bytes). Only the
  // reading capsule fills `in`.
  std::span<const std::byte> feed;
  std::unique_ptr<std::byte[]> in;
  std::size_t in_begin = 0;
  std::size_t in_end = 0;
  bool in_eof = false;  // the TCP stream ended

  // Ciphertext OpenSSL wrote and not yet sent: out[out_begin, out_end). One capsule at a time
  // sends it (`flushing`); OpenSSL appends behind it meanwhile.
  std::unique_ptr<std::byte[]> out;
  std::size_t out_begin = 0;
  std::size_t out_end = 0;
  bool flushing = false;

  bool handshake_done = false;
  bool failed = false;           // a fatal TLS error: only closing is left
  bool shutdown_sent = false;
  bool close_notify = false;     // the peer's close_notify arrived
  Session latest_session;        // the newest ticket (clients with session_resumption)
  std::string server_name;
};

// attach_bio gives `state.ssl` the BIO that reads `feed`/`in` and writes `out`. Returns false
// if OpenSSL could not allocate it.
bool attach_bio(StreamState& state) noexcept;

}  // namespace aem::tls::detail
