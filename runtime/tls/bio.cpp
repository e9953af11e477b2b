// bio.cpp — the BIO between OpenSSL and a tls::Stream's ciphertext buffers. It never blocks
// and never makes a system call: a read with nothing buffered and a write into a full buffer
// ask OpenSSL to retry (WANT_READ / WANT_WRITE), and the stream does the socket I/O outside
// OpenSSL. Each ciphertext byte is copied once, between these buffers and OpenSSL's record
// buffers; a pair of memory BIOs would add a second copy on each side.
#include "runtime/tls/stream_state.hpp"

#include <openssl/bio.h>

#include <algorithm>
#include <cstring>
#include <new>

namespace aem::tls::detail {
namespace {

StreamState& state_of(BIO* bio) noexcept { return *static_cast<StreamState*>(BIO_get_data(bio)); }

int read_ciphertext(BIO* bio, char* data, int length) {
  BIO_clear_retry_flags(bio);
  StreamState& state = state_of(bio);
  const auto wanted = static_cast<std::size_t>(std::max(length, 0));
  if (state.in_begin < state.in_end) {
    const std::size_t n = std::min(wanted, state.in_end - state.in_begin);
    std::memcpy(data, state.in.get() + state.in_begin, n);
    state.in_begin += n;
    return static_cast<int>(n);
  }
  if (!state.feed.empty()) {
    const std::size_t n = std::min(wanted, state.feed.size());
    std::memcpy(data, state.feed.data(), n);
    state.feed = state.feed.subspan(n);
    return static_cast<int>(n);
  }
  if (state.in_eof) return 0;  // with BIO_CTRL_EOF: OpenSSL reports an unexpected EOF
  BIO_set_retry_read(bio);
  return -1;
}

int write_ciphertext(BIO* bio, const char* data, int length) {
  BIO_clear_retry_flags(bio);
  StreamState& state = state_of(bio);
  if (!state.out) {
    state.out.reset(new (std::nothrow) std::byte[kOutputCapacity]);
    if (!state.out) return -1;  // not a retry: OpenSSL fails the call (errc::out_of_memory)
  }
  if (!state.flushing && state.out_begin > 0) {
    // Nobody is sending from the buffer: move what is left to the front.
    std::memmove(state.out.get(), state.out.get() + state.out_begin, state.out_end - state.out_begin);
    state.out_end -= state.out_begin;
    state.out_begin = 0;
  }
  const std::size_t room = kOutputCapacity - state.out_end;
  if (room == 0) {
    BIO_set_retry_write(bio);
    return -1;
  }
  const std::size_t n = std::min(room, static_cast<std::size_t>(std::max(length, 0)));
  std::memcpy(state.out.get() + state.out_end, data, n);
  state.out_end += n;
  return static_cast<int>(n);
}

long control(BIO* bio, int command, long /*number*/, void* /*pointer*/) {
  StreamState& state = state_of(bio);
  switch (command) {
    case BIO_CTRL_FLUSH: return 1;  // the stream sends `out` itself
    case BIO_CTRL_EOF: return state.in_eof && state.feed.empty() && state.in_begin == state.in_end ? 1 : 0;
    case BIO_CTRL_PENDING: return static_cast<long>(state.feed.size() + (state.in_end - state.in_begin));
    case BIO_CTRL_WPENDING: return static_cast<long>(state.out_end - state.out_begin);
    default: return 0;
  }
}

int create(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

BIO_METHOD* make_method() {
  BIO_METHOD* method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "aem tls stream");
  if (method == nullptr) return nullptr;
  BIO_meth_set_write(method, write_ciphertext);
  BIO_meth_set_read(method, read_ciphertext);
  BIO_meth_set_ctrl(method, control);
  BIO_meth_set_create(method, create);
  return method;
}

}  // namespace

bool attach_bio(StreamState& state) noexcept {
  static BIO_METHOD* const method = make_method();  // one for the process, never freed
  if (method == nullptr) return false;
  BIO* bio = BIO_new(method);
  if (bio == nullptr) return false;
  BIO_set_data(bio, &state);
  SSL_set_bio(state.ssl, bio, bio);  // one reference, for both directions
  return true;
}

}  // namespace aem::tls::detail
