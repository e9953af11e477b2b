// stream.cpp — tls::Stream: the handshake, reads and writes as loops around non-blocking OpenSSL
// calls (made under the stream's lock), with the socket I/O between them.
#include "runtime/tls/openssl_error.hpp"
#include "runtime/tls/stream_state.hpp"

#include <aem/capsule.hpp>
#include <aem/core_arena.hpp>
#include <aem/error.hpp>
#include <aem/tls/stream.hpp>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <climits>
#include <cstring>
#include <mutex>
#include <new>
#include <utility>

namespace aem::tls {
namespace {

using detail::StreamState;

// Step is the outcome of one OpenSSL call.
struct Step {
  int ssl_error = SSL_ERROR_NONE;
  std::error_code error;    // for SSL_ERROR_SSL / SSL_ERROR_SYSCALL
  bool out_pending = false;  // ciphertext waits to be sent
};

// failure turns a fatal SSL_get_error result into a code, from the calling thread's error queue.
// Called under the lock, right after the call that failed (the queue is per thread).
std::error_code failure(StreamState& state, int ssl_error) {
  state.failed = true;
  const unsigned long first = ERR_peek_error();
  if (ERR_GET_LIB(first) == ERR_LIB_SSL && ERR_GET_REASON(first) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
    ERR_clear_error();
    return make_error_code(tls_errc::truncated);
  }
  if (ERR_GET_LIB(first) == ERR_LIB_SSL && ERR_GET_REASON(first) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
    const long verified = SSL_get_verify_result(state.ssl);
    if (verified != X509_V_OK) {
      ERR_clear_error();
      return detail::verify_error(verified);
    }
  }
  if (ssl_error == SSL_ERROR_SYSCALL && first == 0) {
    // Our BIO makes no system call: an empty queue means it could not allocate, or the stream ended.
    return state.in_eof ? std::error_code(tls_errc::truncated) : make_error_code(errc::out_of_memory);
  }
  return detail::take_openssl_error(state.handshake_done ? tls_errc::stream_failed : tls_errc::handshake_failed);
}

// call runs one OpenSSL operation under the lock. `operation` returns 1 on success.
template <typename Operation>
Step call(StreamState& state, Operation&& operation) {
  std::lock_guard guard(state.lock);
  Step step;
  ERR_clear_error();
  const int rc = operation();
  if (rc <= 0) {
    step.ssl_error = SSL_get_error(state.ssl, rc);
    if (step.ssl_error == SSL_ERROR_SSL || step.ssl_error == SSL_ERROR_SYSCALL) step.error = failure(state, step.ssl_error);
  }
  step.out_pending = state.out_begin < state.out_end;
  return step;
}

// flush sends the pending ciphertext. When another capsule is sending, it waits for that one to
// finish the buffer (new bytes may have joined it).
Result<void> flush(StreamState& state, Deadline deadline) {
  std::unique_lock guard(state.lock);
  for (;;) {
    if (state.out_begin == state.out_end) {
      if (!state.flushing) state.out_begin = state.out_end = 0;
      return {};
    }
    if (state.flushing) {
      // Rare: a reader's answer to a key update while a write is out. Poll the other sender.
      guard.unlock();
      if (deadline.expired()) return errc::timed_out;
      this_capsule::sleep_for(std::chrono::milliseconds(1));
      guard.lock();
      continue;
    }
    state.flushing = true;
    const std::span<const std::byte> pending(state.out.get() + state.out_begin, state.out_end - state.out_begin);
    guard.unlock();
    Result<std::size_t> sent = state.tcp.write(pending, deadline);
    guard.lock();
    state.flushing = false;
    if (!sent) return sent.error();
    state.out_begin += *sent;
  }
}

// fill reads ciphertext from the socket into `in` (the reading capsule only).
Result<void> fill(StreamState& state, Deadline deadline) {
  std::span<std::byte> space;
  {
    std::lock_guard guard(state.lock);
    if (!state.in) {
      state.in.reset(new (std::nothrow) std::byte[detail::kInputCapacity]);
      if (!state.in) return errc::out_of_memory;
    }
    if (state.in_begin == state.in_end) {
      state.in_begin = state.in_end = 0;
    } else if (state.in_end == detail::kInputCapacity) {
      std::memmove(state.in.get(), state.in.get() + state.in_begin, state.in_end - state.in_begin);
      state.in_end -= state.in_begin;
      state.in_begin = 0;
    }
    space = {state.in.get() + state.in_end, detail::kInputCapacity - state.in_end};
  }
  Result<std::size_t> received = state.tcp.read(space, deadline);
  if (!received) return received.error();
  std::lock_guard guard(state.lock);
  if (*received == 0) state.in_eof = true;
  state.in_end += *received;
  return {};
}

// drive repeats `operation` until it succeeds, doing the I/O it asks for. Returns 1 on success,
// 0 after the peer's close_notify.
template <typename Operation>
Result<int> drive(StreamState& state, Deadline deadline, Operation&& operation) {
  for (;;) {
    const Step step = call(state, operation);
    if (step.out_pending) {
      // Send what OpenSSL wrote — also an alert before a failure, so the peer learns why.
      Result<void> sent = flush(state, step.error ? Deadline(std::chrono::milliseconds(100)) : deadline);
      if (!sent && !step.error) return sent.error();
    }
    switch (step.ssl_error) {
      case SSL_ERROR_NONE: return 1;
      case SSL_ERROR_ZERO_RETURN:
        state.close_notify = true;
        return 0;
      case SSL_ERROR_WANT_READ:
        if (Result<void> filled = fill(state, deadline); !filled) return filled.error();
        break;
      case SSL_ERROR_WANT_WRITE: break;  // `out` was full: flushed above
      default: return step.error ? step.error : std::error_code(tls_errc::stream_failed);
    }
  }
}

bool is_ip_address(const std::string& name) {
  unsigned char address[16];
  return ::inet_pton(AF_INET, name.c_str(), address) == 1 || ::inet_pton(AF_INET6, name.c_str(), address) == 1;
}

std::string one_line(X509_NAME* name) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr) return {};
  X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253);
  char* text = nullptr;
  const long length = BIO_get_mem_data(bio, &text);
  std::string result(text != nullptr ? text : "", static_cast<std::size_t>(length > 0 ? length : 0));
  BIO_free(bio);
  return result;
}

// new_state makes the SSL object of a connection and its BIO.
Result<std::unique_ptr<StreamState>> new_state(const Context& context, TcpStream tcp) {
  auto state = std::unique_ptr<StreamState>(new (std::nothrow) StreamState);
  if (!state) return errc::out_of_memory;
  state->ssl = SSL_new(context.native());
  if (state->ssl == nullptr || !detail::attach_bio(*state)) return errc::out_of_memory;
  state->tcp = std::move(tcp);
  state->context = context;
  SSL_set_app_data(state->ssl, state.get());
  return state;
}

}  // namespace

Stream::Stream() noexcept = default;
Stream::Stream(std::unique_ptr<detail::StreamState> state) noexcept : state_(std::move(state)) {}
Stream::Stream(Stream&&) noexcept = default;
Stream& Stream::operator=(Stream&&) noexcept = default;
Stream::~Stream() = default;

Result<Stream> Stream::server(const Context& context, TcpStream tcp) {
  if (!context.valid() || !context.is_server() || !tcp.is_open()) return errc::invalid_argument;
  auto state = new_state(context, std::move(tcp));
  if (!state) return state.error();
  SSL_set_accept_state((*state)->ssl);
  return Stream(std::move(*state));
}

Result<Stream> Stream::client(const Context& context, TcpStream tcp, std::string_view server_name, const Session& resume) {
  if (!context.valid() || context.is_server() || !tcp.is_open() || server_name.find('\0') != std::string_view::npos) {
    return errc::invalid_argument;
  }
  auto made = new_state(context, std::move(tcp));
  if (!made) return made.error();
  std::unique_ptr<StreamState> state = std::move(*made);
  state->server_name = server_name;
  SSL* ssl = state->ssl;
  SSL_set_connect_state(ssl);
  const bool ip = is_ip_address(state->server_name);
  ERR_clear_error();
  if (!state->server_name.empty() && !ip && SSL_set_tlsext_host_name(ssl, state->server_name.c_str()) != 1) {
    return detail::take_openssl_error(tls_errc::handshake_failed);
  }
  if (context.state_->verify_peer && !state->server_name.empty()) {
    const int checked = ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), state->server_name.c_str())
                           : SSL_set1_host(ssl, state->server_name.c_str());
    if (checked != 1) return detail::take_openssl_error(tls_errc::handshake_failed);
  }
  if (resume && SSL_set_session(ssl, resume.native()) != 1) return detail::take_openssl_error(tls_errc::handshake_failed);
  return Stream(std::move(state));
}

Result<Stream> Stream::connect(const Context& context, std::string_view host, std::uint16_t port, Deadline deadline,
                               const Session& resume) {
  Result<TcpStream> tcp = TcpStream::connect(host, port, deadline);
  if (!tcp) return tcp.error();
  (void)tcp->set_nodelay(true);  // records are whole messages: no Nagle delay between them
  Result<Stream> stream = client(context, std::move(*tcp), host, resume);
  if (!stream) return stream.error();
  if (Result<void> done = stream->handshake(deadline); !done) return done.error();
  return stream;
}

Result<void> Stream::handshake(Deadline deadline) {
  if (!state_) return errc::invalid_argument;
  StreamState& state = *state_;
  if (state.failed) return make_error_code(tls_errc::stream_failed);
  if (state.handshake_done) return {};
  Result<int> done = drive(state, deadline, [&] { return SSL_do_handshake(state.ssl); });
  if (!done) return done.error();
  if (*done == 0) return make_error_code(tls_errc::handshake_failed);  // a close_notify instead of a handshake
  std::lock_guard guard(state.lock);
  state.handshake_done = true;
  if (const char* name = SSL_get_servername(state.ssl, TLSEXT_NAMETYPE_host_name); name != nullptr) state.server_name = name;
  return {};
}

Result<std::size_t> Stream::read(std::span<std::byte> buffer, Deadline deadline) {
  if (!state_) return errc::invalid_argument;
  StreamState& state = *state_;
  if (state.failed) return make_error_code(tls_errc::stream_failed);
  if (!state.handshake_done) return make_error_code(tls_errc::handshake_required);
  if (buffer.empty() || state.close_notify) return 0;
  std::size_t count = 0;
  Result<int> done = drive(state, deadline, [&] { return SSL_read_ex(state.ssl, buffer.data(), buffer.size(), &count); });
  if (!done) return done.error();
  return *done == 0 ? 0 : count;
}

Result<void> Stream::read_exact(std::span<std::byte> buffer, Deadline deadline) {
  return ::aem::detail::read_exact_with(*this, buffer, deadline);
}

Result<std::size_t> Stream::write(std::span<const std::byte> data, Deadline deadline) {
  if (!state_) return errc::invalid_argument;
  StreamState& state = *state_;
  if (state.failed) return make_error_code(tls_errc::stream_failed);
  if (!state.handshake_done) return make_error_code(tls_errc::handshake_required);
  if (data.empty()) return 0;
  // Encrypt as many records as `out` takes (each SSL_write_ex writes one, partial writes on),
  // then send them together.
  std::size_t total = 0;
  for (;;) {
    std::size_t written = 0;
    const std::span<const std::byte> rest = data.subspan(total);
    const Step step = call(state, [&] { return SSL_write_ex(state.ssl, rest.data(), rest.size(), &written); });
    if (step.ssl_error == SSL_ERROR_NONE) {
      total += written;
      bool room = false;
      {
        std::lock_guard guard(state.lock);
        room = detail::kOutputCapacity - (state.out_end - state.out_begin) > 16 * 1024 + 512 && !state.flushing;
      }
      if (total < data.size() && room) continue;
      if (Result<void> sent = flush(state, deadline); !sent) return sent.error();
      return total;
    }
    if (step.out_pending || step.ssl_error == SSL_ERROR_WANT_WRITE) {
      Result<void> sent = flush(state, step.error ? Deadline(std::chrono::milliseconds(100)) : deadline);
      if (!sent && !step.error) return sent.error();
    }
    if (step.ssl_error == SSL_ERROR_WANT_WRITE) {
      if (total > 0) return total;  // what was encrypted is out
      continue;
    }
    if (total > 0 && !step.error) return total;
    return step.error ? step.error : std::error_code(tls_errc::stream_failed);
  }
}

Result<void> Stream::write_all(std::span<const std::byte> data, Deadline deadline) {
  return ::aem::detail::write_all_with(*this, data, deadline);
}

Result<std::size_t> Stream::writev(std::span<const iovec> buffers, Deadline deadline) {
  if (buffers.size() > IOV_MAX) return errc::invalid_argument;
  for (const iovec& buffer : buffers) {
    if (buffer.iov_len == 0) continue;
    // One buffer per call: a short write of it ends the gathered write here, as writev(2) does.
    return write(std::span(static_cast<const std::byte*>(buffer.iov_base), buffer.iov_len), deadline);
  }
  return 0;
}

Result<void> Stream::shutdown(Deadline deadline) {
  if (!state_) return errc::invalid_argument;
  StreamState& state = *state_;
  if (state.failed) return make_error_code(tls_errc::stream_failed);
  if (!state.handshake_done) return make_error_code(tls_errc::handshake_required);
  if (state.shutdown_sent) return flush(state, deadline);
  const Step step = call(state, [&] {
    const int rc = SSL_shutdown(state.ssl);
    return rc >= 0 ? 1 : rc;  // 0: sent, the peer's has not come: that is all we wait for
  });
  if (step.error) return step.error;
  state.shutdown_sent = true;
  return flush(state, deadline);
}

void Stream::cancel() noexcept {
  if (state_) state_->tcp.cancel();
}

Result<void> Stream::close() noexcept {
  if (!state_) return {};
  return state_->tcp.close();
}

TcpStream& Stream::tcp() noexcept {
  static TcpStream none;
  return state_ ? state_->tcp : none;
}
const TcpStream& Stream::tcp() const noexcept {
  static const TcpStream none;
  return state_ ? state_->tcp : none;
}

std::string_view Stream::alpn() const noexcept {
  if (!state_ || !state_->handshake_done) return {};
  const unsigned char* data = nullptr;
  unsigned length = 0;
  SSL_get0_alpn_selected(state_->ssl, &data, &length);
  return {reinterpret_cast<const char*>(data), length};
}

std::string_view Stream::version() const noexcept {
  if (!state_ || !state_->handshake_done) return {};
  return SSL_get_version(state_->ssl);
}

std::string_view Stream::cipher() const noexcept {
  if (!state_ || !state_->handshake_done) return {};
  const char* name = SSL_get_cipher_name(state_->ssl);
  return name != nullptr ? name : "";
}

std::string_view Stream::server_name() const noexcept { return state_ ? std::string_view(state_->server_name) : ""; }

bool Stream::resumed() const noexcept { return state_ && state_->handshake_done && SSL_session_reused(state_->ssl) == 1; }

bool Stream::handshake_done() const noexcept { return state_ && state_->handshake_done; }

bool Stream::close_notify_received() const noexcept { return state_ && state_->close_notify; }

Session Stream::session() const {
  if (!state_) return {};
  std::lock_guard guard(state_->lock);
  return state_->latest_session;
}

std::optional<PeerCertificate> Stream::peer_certificate() const {
  if (!state_ || !state_->handshake_done) return std::nullopt;
  X509* certificate = SSL_get1_peer_certificate(state_->ssl);
  if (certificate == nullptr) return std::nullopt;
  PeerCertificate peer;
  peer.subject = one_line(X509_get_subject_name(certificate));
  peer.issuer = one_line(X509_get_issuer_name(certificate));
  const int length = i2d_X509(certificate, nullptr);
  if (length > 0) {
    peer.der.resize(static_cast<std::size_t>(length));
    auto* cursor = reinterpret_cast<unsigned char*>(peer.der.data());
    i2d_X509(certificate, &cursor);
  }
  X509_free(certificate);
  return peer;
}

Result<bool> Stream::decrypt_to(std::span<const std::byte> ciphertext, void (*deliver)(void*, EventData), void* target) {
  if (!state_) return errc::invalid_argument;
  StreamState& state = *state_;
  if (state.failed) return make_error_code(tls_errc::stream_failed);
  if (!state.handshake_done) return make_error_code(tls_errc::handshake_required);
  if (state.close_notify) return false;
  {
    std::lock_guard guard(state.lock);
    state.feed = ciphertext;
  }
  bool more = true;
  std::error_code error;
  bool out_pending = false;
  for (;;) {
    // Plaintext goes into a block of its exact size: read a little first, then the rest of the
    // record (SSL_pending) straight into the block. Only the first bytes are copied again.
    std::byte head[512];
    std::size_t count = 0;
    const Step step = call(state, [&] { return SSL_read_ex(state.ssl, head, sizeof head, &count); });
    out_pending = out_pending || step.out_pending;
    if (step.ssl_error == SSL_ERROR_WANT_READ || step.ssl_error == SSL_ERROR_WANT_WRITE) break;
    if (step.ssl_error == SSL_ERROR_ZERO_RETURN) {
      state.close_notify = true;
      more = false;
      break;
    }
    if (step.ssl_error != SSL_ERROR_NONE) {
      error = step.error;
      break;
    }
    std::size_t pending = 0;
    {
      std::lock_guard guard(state.lock);
      pending = static_cast<std::size_t>(SSL_pending(state.ssl));
    }
    Result<EventData> block = this_core::allocate_data(count + pending);
    if (!block) {
      error = block.error();
      break;
    }
    std::memcpy(block->data(), head, count);
    if (pending > 0) {
      std::size_t rest = 0;
      const Step tail = call(state, [&] { return SSL_read_ex(state.ssl, block->data() + count, pending, &rest); });
      if (tail.ssl_error != SSL_ERROR_NONE || rest != pending) {
        error = tail.error ? tail.error : std::error_code(tls_errc::stream_failed);
        break;
      }
    }
    deliver(target, std::move(*block));
  }
  {
    std::lock_guard guard(state.lock);
    state.feed = {};  // OpenSSL took every byte (it keeps an incomplete record itself)
  }
  if (out_pending) {
    Result<void> sent = flush(state, error ? Deadline(std::chrono::milliseconds(100)) : Deadline());
    if (!sent && !error) return sent.error();
  }
  if (error) return error;
  return more;
}

}  // namespace aem::tls
