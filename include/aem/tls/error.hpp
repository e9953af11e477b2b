// tls/error.hpp — the errors of aem's TLS layer: a std::error_category of its own ("aem.tls")
// whose messages are OpenSSL's reason texts and certificate verification results.
#pragma once

#include <aem/export.hpp>

#include <string>
#include <system_error>
#include <type_traits>

namespace aem::tls {

// tls_errc lists the failures aem's TLS layer names itself, as codes of tls_category().
// Failures found by OpenSSL are codes of tls_category() as well: their value packs OpenSSL's
// library and reason (ERR_PACK), their message is OpenSSL's text ("ssl: wrong version number",
// "ssl: tlsv1 alert unknown ca", …). A rejected peer certificate is a code whose message is
// "certificate verify failed: " and X509_verify_cert_error_string's reason ("certificate has
// expired", "hostname mismatch", "self-signed certificate", …); is_certificate_rejected tells it.
// The I/O beneath keeps its own codes: errc::timed_out, errc::cancelled,
// std::errc::connection_reset, ….
enum class tls_errc : int {
  truncated = 1,          // the peer closed the connection without a close_notify (data may be missing)
  handshake_required,     // read or write before the handshake completed
  handshake_failed,       // the handshake failed without a reason from OpenSSL
  no_certificate,         // a server context without a certificate and key
  bad_certificate,        // a certificate, key or CA list that does not load (the message says which)
  key_mismatch,           // the private key does not belong to the certificate
  bad_alpn,               // an ALPN protocol name that is empty or longer than 255 bytes
  stream_failed,          // a previous fatal error ended the TLS session: only closing remains
};

// tls_category returns the category of tls_errc and of OpenSSL's errors (name "aem.tls").
// Any thread.
AEM_EXPORT const std::error_category& tls_category() noexcept;

// make_error_code wraps a tls_errc, so that `ec == aem::tls::tls_errc::truncated` works.
inline std::error_code make_error_code(tls_errc e) noexcept { return {static_cast<int>(e), tls_category()}; }

// is_certificate_rejected reports whether `ec` says that peer verification refused the
// certificate (expired, untrusted, self-signed, wrong host name, …). Any thread.
AEM_EXPORT bool is_certificate_rejected(std::error_code ec) noexcept;

}  // namespace aem::tls

template <>
struct std::is_error_code_enum<aem::tls::tls_errc> : std::true_type {};
