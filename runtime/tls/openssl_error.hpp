// openssl_error.hpp — turning OpenSSL's error queue and verification results into
// std::error_codes of tls_category(). Private to the library.
#pragma once

#include <aem/tls/error.hpp>

#include <system_error>

namespace aem::tls::detail {

// kVerifyBase + an X509_V_ERR_* value is the code of a refused peer certificate; OpenSSL's own
// packed codes (library << 23 | reason) lie above it, tls_errc below.
inline constexpr int kVerifyBase = 0x10000;
inline constexpr int kVerifyEnd = 0x20000;

// verify_error returns the code of an X509 verification result.
inline std::error_code verify_error(long result) noexcept {
  return {kVerifyBase + static_cast<int>(result), tls_category()};
}

// take_openssl_error empties the calling thread's OpenSSL error queue and returns its first
// (root) error as a code, or `fallback` when the queue is empty.
std::error_code take_openssl_error(tls_errc fallback) noexcept;

}  // namespace aem::tls::detail
