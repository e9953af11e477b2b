// context.cpp — Context: building an OpenSSL SSL_CTX from ServerOptions / ClientOptions, and the
// callbacks that read them during a handshake (SNI, ALPN).
#include "runtime/tls/context_state.hpp"
#include "runtime/tls/openssl_error.hpp"
#include "runtime/tls/stream_state.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <memory>
#include <utility>

namespace aem::tls {
namespace {

using detail::ContextState;

struct BioFree {
  void operator()(BIO* bio) const noexcept { BIO_free(bio); }
};
using MemoryBio = std::unique_ptr<BIO, BioFree>;

MemoryBio memory_bio(const std::string& text) {
  return MemoryBio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

// PemUse says how use_pem_object went.
enum class PemUse { unreadable, refused, used };

// use_pem_object reads the first PEM object of `bio` with `read` (PEM_read_bio_X509_AUX, …) and
// gives it to the context with `use` (which takes its own reference), then frees ours with
// `release`. A null `bio` (out of memory) is unreadable.
template <class Object>
PemUse use_pem_object(BIO* bio, SSL_CTX* ctx, Object* (*read)(BIO*, Object**, pem_password_cb*, void*),
                      int (*use)(SSL_CTX*, Object*), void (*release)(Object*)) {
  Object* object = bio != nullptr ? read(bio, nullptr, nullptr, nullptr) : nullptr;
  if (object == nullptr) return PemUse::unreadable;
  const int used = use(ctx, object);
  release(object);
  return used == 1 ? PemUse::used : PemUse::refused;
}

Result<void> load_credentials(SSL_CTX* ctx, const Credentials& credentials) {
  ERR_clear_error();
  if (!credentials.certificate_chain_pem.empty()) {
    MemoryBio bio = memory_bio(credentials.certificate_chain_pem);
    if (use_pem_object(bio.get(), ctx, PEM_read_bio_X509_AUX, SSL_CTX_use_certificate, X509_free) != PemUse::used) {
      return detail::take_openssl_error(tls_errc::bad_certificate);
    }
    SSL_CTX_clear_chain_certs(ctx);
    while (X509* intermediate = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
      if (SSL_CTX_add0_chain_cert(ctx, intermediate) != 1) {
        X509_free(intermediate);
        return detail::take_openssl_error(tls_errc::bad_certificate);
      }
    }
    ERR_clear_error();  // the end of the PEM text is reported as an error
  } else if (!credentials.certificate_chain_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, credentials.certificate_chain_file.c_str()) != 1) {
      return detail::take_openssl_error(tls_errc::bad_certificate);
    }
  } else {
    return make_error_code(tls_errc::no_certificate);
  }
  if (!credentials.private_key_pem.empty()) {
    MemoryBio bio = memory_bio(credentials.private_key_pem);
    const PemUse used = use_pem_object(bio.get(), ctx, PEM_read_bio_PrivateKey, SSL_CTX_use_PrivateKey, EVP_PKEY_free);
    if (used == PemUse::unreadable) return detail::take_openssl_error(tls_errc::bad_certificate);
    if (used == PemUse::refused) {
      ERR_clear_error();  // OpenSSL checks the key against the certificate here already
      return make_error_code(tls_errc::key_mismatch);
    }
  } else if (!credentials.private_key_file.empty()) {
    if (SSL_CTX_use_PrivateKey_file(ctx, credentials.private_key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      return detail::take_openssl_error(tls_errc::bad_certificate);
    }
  } else {
    return make_error_code(tls_errc::no_certificate);
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    ERR_clear_error();
    return make_error_code(tls_errc::key_mismatch);
  }
  return {};
}

Result<void> load_cas(SSL_CTX* ctx, const TrustedCas& cas) {
  ERR_clear_error();
  if (!cas.pem.empty()) {
    MemoryBio bio = memory_bio(cas.pem);
    X509_STORE* store = SSL_CTX_get_cert_store(ctx);
    int loaded = 0;
    while (X509* ca = bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr) {
      const int added = X509_STORE_add_cert(store, ca);
      X509_free(ca);
      if (added != 1) return detail::take_openssl_error(tls_errc::bad_certificate);
      ++loaded;
    }
    if (loaded == 0) return detail::take_openssl_error(tls_errc::bad_certificate);
    ERR_clear_error();
  }
  if (!cas.file.empty() && SSL_CTX_load_verify_locations(ctx, cas.file.c_str(), nullptr) != 1) {
    return detail::take_openssl_error(tls_errc::bad_certificate);
  }
  if (cas.pem.empty() && cas.file.empty() && cas.use_system_store && SSL_CTX_set_default_verify_paths(ctx) != 1) {
    return detail::take_openssl_error(tls_errc::bad_certificate);
  }
  return {};
}

Result<std::string> alpn_wire(const std::vector<std::string>& protocols) {
  std::string wire;
  for (const std::string& protocol : protocols) {
    if (protocol.empty() || protocol.size() > 255) return make_error_code(tls_errc::bad_alpn);
    wire.push_back(static_cast<char>(protocol.size()));
    wire += protocol;
  }
  return wire;
}

// make_state creates the SSL_CTX with what both sides share: versions, ciphers, no
// renegotiation, and the state as the context's app data.
Result<std::shared_ptr<ContextState>> make_state(bool server, Version min_version, const std::string& cipher_list,
                                                 const std::string& cipher_suites) {
  ERR_clear_error();
  auto state = std::make_shared<ContextState>();
  state->server = server;
  state->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (state->ctx == nullptr) return detail::take_openssl_error(tls_errc::handshake_failed);
  SSL_CTX* ctx = state->ctx;
  SSL_CTX_set_min_proto_version(ctx, min_version == Version::tls1_3 ? TLS1_3_VERSION : TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // Partial writes: a write returns once some records are out instead of holding the whole
  // buffer; the buffer may move between the retries of one write (it is the caller's span).
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_set_cipher_list(ctx, cipher_list.c_str()) != 1 || SSL_CTX_set_ciphersuites(ctx, cipher_suites.c_str()) != 1) {
    return detail::take_openssl_error(tls_errc::handshake_failed);
  }
  SSL_CTX_set_app_data(ctx, state.get());
  return state;
}

int select_alpn(SSL* /*ssl*/, const unsigned char** out, unsigned char* out_length, const unsigned char* offered,
                unsigned int offered_length, void* arg) {
  const auto* state = static_cast<const ContextState*>(arg);
  const auto* ours = reinterpret_cast<const unsigned char*>(state->alpn_wire.data());
  unsigned char* chosen = nullptr;
  unsigned char chosen_length = 0;
  // The server's order decides (SSL_select_next_proto walks the first list given).
  if (SSL_select_next_proto(&chosen, &chosen_length, ours, static_cast<unsigned>(state->alpn_wire.size()), offered,
                            offered_length) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;  // no protocol in common: refused (no_application_protocol)
  }
  *out = chosen;
  *out_length = chosen_length;
  return SSL_TLSEXT_ERR_OK;
}

int select_by_name(SSL* ssl, int* /*alert*/, void* arg) {
  const auto* state = static_cast<const ContextState*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == nullptr || !state->select_context) return SSL_TLSEXT_ERR_NOACK;
  Context chosen = state->select_context(name);
  if (!chosen.valid() || chosen.native() == state->ctx) return SSL_TLSEXT_ERR_OK;
  if (!chosen.is_server()) return SSL_TLSEXT_ERR_ALERT_FATAL;
  SSL_set_SSL_CTX(ssl, chosen.native());
  // The stream keeps the chosen context (its ALPN list and callbacks) while it lives.
  if (auto* stream = static_cast<detail::StreamState*>(SSL_get_app_data(ssl))) stream->selected = std::move(chosen);
  return SSL_TLSEXT_ERR_OK;
}

int keep_new_session(SSL* ssl, SSL_SESSION* session) {
  auto* stream = static_cast<detail::StreamState*>(SSL_get_app_data(ssl));
  if (stream == nullptr) return 0;
  stream->latest_session = Session::adopt(session);
  return 1;  // the reference is ours now
}

}  // namespace

Session Session::adopt(ssl_session_st* session) noexcept {
  Session handle;
  if (session != nullptr) handle.session_ = std::shared_ptr<ssl_session_st>(session, SSL_SESSION_free);
  return handle;
}

bool Context::is_server() const noexcept { return state_ != nullptr && state_->server; }
ssl_ctx_st* Context::native() const noexcept { return state_ != nullptr ? state_->ctx : nullptr; }

Result<Context> Context::server(const ServerOptions& options) {
  auto state = make_state(true, options.min_version, options.cipher_list, options.cipher_suites);
  if (!state) return state.error();
  SSL_CTX* ctx = (*state)->ctx;
  if (auto loaded = load_credentials(ctx, options.credentials); !loaded) return loaded.error();
  auto wire = alpn_wire(options.alpn);
  if (!wire) return wire.error();
  (*state)->alpn_wire = std::move(*wire);
  if (!(*state)->alpn_wire.empty()) SSL_CTX_set_alpn_select_cb(ctx, select_alpn, state->get());
  if (options.select_context) {
    (*state)->select_context = options.select_context;
    SSL_CTX_set_tlsext_servername_callback(ctx, select_by_name);
    SSL_CTX_set_tlsext_servername_arg(ctx, state->get());
  }
  static constexpr unsigned char kSessionContext[] = "aem.tls";
  SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1);
  if (!options.session_tickets) {
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  }
  if (options.verify_clients) {
    if (auto loaded = load_cas(ctx, options.client_cas); !loaded) return loaded.error();
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    (*state)->verify_peer = true;
  }
  Context context;
  context.state_ = std::move(*state);
  return context;
}

Result<Context> Context::client(const ClientOptions& options) {
  auto state = make_state(false, options.min_version, options.cipher_list, options.cipher_suites);
  if (!state) return state.error();
  SSL_CTX* ctx = (*state)->ctx;
  if (!options.credentials.empty()) {
    if (auto loaded = load_credentials(ctx, options.credentials); !loaded) return loaded.error();
  }
  if (options.verify_peer) {
    if (auto loaded = load_cas(ctx, options.trusted_cas); !loaded) return loaded.error();
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    (*state)->verify_peer = true;
  }
  auto wire = alpn_wire(options.alpn);
  if (!wire) return wire.error();
  (*state)->alpn_wire = std::move(*wire);
  if (!(*state)->alpn_wire.empty() &&
      SSL_CTX_set_alpn_protos(ctx, reinterpret_cast<const unsigned char*>((*state)->alpn_wire.data()),
                              static_cast<unsigned>((*state)->alpn_wire.size())) != 0) {
    return make_error_code(tls_errc::bad_alpn);
  }
  if (options.session_resumption) {
    // The stream keeps what the server hands out (Stream::session); OpenSSL's own client
    // cache is not used.
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, keep_new_session);
    (*state)->session_resumption = true;
  } else {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  }
  Context context;
  context.state_ = std::move(*state);
  return context;
}

}  // namespace aem::tls
