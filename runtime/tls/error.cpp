// error.cpp — tls_category(): the messages of tls_errc, of OpenSSL's packed error codes and of
// certificate verification results.
#include "runtime/tls/openssl_error.hpp"

#include <aem/error.hpp>

#include <openssl/err.h>
#include <openssl/x509.h>

#include <string>

namespace aem::tls {
namespace {

class TlsCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "aem.tls"; }
  std::string message(int value) const override {
    if (value >= detail::kVerifyBase && value < detail::kVerifyEnd) {
      return std::string("certificate verify failed: ") + X509_verify_cert_error_string(value - detail::kVerifyBase);
    }
    switch (static_cast<tls_errc>(value)) {
      case tls_errc::truncated:
        return "the peer closed the TLS connection without close_notify (the data may be truncated)";
      case tls_errc::handshake_required: return "the TLS handshake has not completed";
      case tls_errc::handshake_failed: return "the TLS handshake failed";
      case tls_errc::no_certificate: return "a TLS server context needs a certificate chain and a private key";
      case tls_errc::bad_certificate: return "the certificate, key or CA list could not be loaded";
      case tls_errc::key_mismatch: return "the private key does not match the certificate";
      case tls_errc::bad_alpn: return "an ALPN protocol name must be 1 to 255 bytes long";
      case tls_errc::stream_failed: return "an earlier TLS error ended this session";
    }
    const auto packed = static_cast<unsigned long>(static_cast<unsigned>(value));
    const char* reason = ERR_reason_error_string(packed);
    const char* library = ERR_lib_error_string(packed);
    if (reason == nullptr) return "TLS error " + std::to_string(value);
    return library != nullptr ? std::string(library) + ": " + reason : std::string(reason);
  }
};

}  // namespace

const std::error_category& tls_category() noexcept {
  static const TlsCategory category;
  return category;
}

bool is_certificate_rejected(std::error_code ec) noexcept {
  return ec.category() == tls_category() && ec.value() >= detail::kVerifyBase && ec.value() < detail::kVerifyEnd;
}

namespace detail {

std::error_code take_openssl_error(tls_errc fallback) noexcept {
  const unsigned long first = ERR_get_error();
  ERR_clear_error();
  if (first == 0) return fallback;
  // A system error (ERR_SYSTEM_FLAG) carries an errno.
  if (ERR_SYSTEM_ERROR(first)) return aem::errno_code(static_cast<int>(ERR_GET_REASON(first)));
  // Keep the library and reason (ERR_PACK without the function): a positive int above tls_errc
  // and the verification range.
  const unsigned long packed = ERR_PACK(ERR_GET_LIB(first), 0, ERR_GET_REASON(first));
  if (packed < static_cast<unsigned long>(kVerifyEnd)) return fallback;
  return {static_cast<int>(packed), tls_category()};
}

}  // namespace detail
}  // namespace aem::tls
