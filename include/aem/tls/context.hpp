// tls/context.hpp — Context: what the TLS connections of one side share (certificate and key,
// trusted CAs, verification, ALPN, SNI, session resumption, versions and ciphers), on OpenSSL 3.
#pragma once

#include <aem/export.hpp>
#include <aem/result.hpp>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

struct ssl_ctx_st;      // OpenSSL's SSL_CTX
struct ssl_session_st;  // OpenSSL's SSL_SESSION

namespace aem::tls {

namespace detail {
struct ContextState;
}  // namespace detail

// Version is the lowest protocol version a context accepts. TLS 1.0 and 1.1 are not offered.
enum class Version : unsigned char { tls1_2, tls1_3 };

// kDefaultCipherList is the TLS 1.2 cipher policy: ECDHE key exchange (forward secrecy) with
// AEAD ciphers only, the "intermediate" profile of Mozilla's guidelines without finite-field
// DHE. TLS 1.3 keeps OpenSSL's default suites (kDefaultCipherSuites), all of them AEAD.
inline constexpr std::string_view kDefaultCipherList =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
inline constexpr std::string_view kDefaultCipherSuites =
    "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256";

// Credentials name a certificate chain and its private key, each either a PEM file or PEM text
// in memory (the text wins when both are set). The chain starts with the leaf certificate.
struct Credentials {
  std::string certificate_chain_file{};
  std::string private_key_file{};
  std::string certificate_chain_pem{};
  std::string private_key_pem{};

  bool empty() const noexcept {
    return certificate_chain_file.empty() && certificate_chain_pem.empty() && private_key_file.empty() &&
           private_key_pem.empty();
  }
};

// TrustedCas name the certificate authorities that verify the peer: a PEM file of one or more
// certificates, PEM text, or — when both are empty and use_system_store is true — the system's
// store (/etc/ssl/certs).
struct TrustedCas {
  std::string file{};
  std::string pem{};
  bool use_system_store = true;
};

// Session is what a client keeps of a connection to resume the next one (a TLS 1.3 ticket or
// a TLS 1.2 session): Stream::session() hands it out, Stream::client takes it back. A cheap
// copyable handle; empty by default. Any thread.
class AEM_EXPORT Session {
 public:
  Session() noexcept = default;
  explicit operator bool() const noexcept { return session_ != nullptr; }
  // native returns OpenSSL's SSL_SESSION (owned by this handle), or nullptr.
  ssl_session_st* native() const noexcept { return session_.get(); }
  // adopt takes over one reference of an OpenSSL SSL_SESSION (nullptr: an empty Session).
  static Session adopt(ssl_session_st* session) noexcept;

 private:
  std::shared_ptr<ssl_session_st> session_;
};

class Context;

// ServerOptions configure a server context.
struct ServerOptions {
  Credentials credentials{};  // required
  // alpn lists the application protocols the server speaks, most preferred first ("h2",
  // "http/1.1"). A client offering some of them gets the first of this list it offers; a
  // client offering only others is refused (alert no_application_protocol); a client
  // offering none goes on without ALPN. Empty: ALPN is ignored.
  std::vector<std::string> alpn{};
  // select_context picks the context of a connection by the name the client asked for (SNI),
  // before the certificate is chosen: return the context to use, or an empty Context to keep
  // this one. Called on the core of the connection, during its handshake; must not suspend.
  std::function<Context(std::string_view server_name)> select_context{};
  // session_tickets: resumption with TLS 1.3 tickets / TLS 1.2 session tickets (stateless,
  // keys made by OpenSSL per context and process). Off: every connection is a full handshake.
  bool session_tickets = true;
  // verify_clients asks every client for a certificate signed by client_cas (mutual TLS) and
  // refuses those without one.
  bool verify_clients = false;
  TrustedCas client_cas{.file = {}, .pem = {}, .use_system_store = false};
  Version min_version = Version::tls1_2;
  std::string cipher_list{kDefaultCipherList};      // TLS 1.2 (OpenSSL cipher list syntax)
  std::string cipher_suites{kDefaultCipherSuites};  // TLS 1.3
};

// ClientOptions configure a client context.
struct ClientOptions {
  // verify_peer checks the server's certificate against trusted_cas and its name against the
  // name given to Stream::client (also sent as SNI). On by default; turn it off for tests only.
  bool verify_peer = true;
  TrustedCas trusted_cas{};
  Credentials credentials{};  // optional: a client certificate for mutual TLS
  // alpn lists the protocols offered, most preferred first. Empty: no ALPN extension.
  std::vector<std::string> alpn{};
  // session_resumption: Stream::session() returns what the server handed out (a ticket), and
  // a Stream::client given it tries to resume.
  bool session_resumption = true;
  Version min_version = Version::tls1_2;
  std::string cipher_list{kDefaultCipherList};
  std::string cipher_suites{kDefaultCipherSuites};
};

// Context is a TLS configuration shared by many connections: a cheap copyable handle to an
// OpenSSL SSL_CTX, immutable once made (every connection of any core may use it at once). It
// negotiates TLS 1.2 or 1.3 (never lower), disables renegotiation and compression, and
// prefers the server's cipher order.
//
// Example:
//   auto server = aem::tls::Context::server({.credentials = {.certificate_chain_file = "cert.pem",
//                                                            .private_key_file = "key.pem"},
//                                            .alpn = {"http/1.1"}});
//   if (!server) { std::puts(server.error().message().c_str()); return 1; }
class AEM_EXPORT Context {
 public:
  Context() noexcept = default;  // empty: valid() is false

  // server makes a server context. Any thread. Errors (tls_category()): no_certificate,
  // bad_certificate (with OpenSSL's reason: a missing file, a PEM that does not parse),
  // key_mismatch, bad_alpn, or OpenSSL's reason (a cipher list that selects nothing, …).
  static Result<Context> server(const ServerOptions& options);
  // client makes a client context. Any thread. Errors: as server's.
  static Result<Context> client(const ClientOptions& options);

  bool valid() const noexcept { return state_ != nullptr; }
  bool is_server() const noexcept;
  // native returns the OpenSSL SSL_CTX, for settings this class does not wrap. Change it only
  // before the first connection uses the context.
  ssl_ctx_st* native() const noexcept;

 private:
  std::shared_ptr<detail::ContextState> state_;
  friend class Stream;
};

}  // namespace aem::tls
