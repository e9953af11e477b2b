// test_certificates.hpp — certificates made by the tests themselves with OpenSSL's API: a CA, a
// server certificate for "localhost" signed by it, an expired one, a self-signed one. P-256 keys
// (fast to make and to sign with). Made once per process.
#pragma once

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <doctest/doctest.h>

#include <string>

namespace tls_test {

struct KeyPair {
  std::string certificate_pem;
  std::string key_pem;
};

struct Certificates {
  KeyPair ca;
  KeyPair server;       // CN=localhost, SAN DNS:localhost + IP:127.0.0.1, signed by ca
  KeyPair expired;      // as server, valid from 2 days ago to 1 day ago
  KeyPair self_signed;  // CN=localhost, signed by itself
};

namespace detail {

inline std::string pem_of(X509* certificate) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, certificate);
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio, &data);
  std::string text(data, static_cast<std::size_t>(length));
  BIO_free(bio);
  return text;
}

inline std::string pem_of(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio, &data);
  std::string text(data, static_cast<std::size_t>(length));
  BIO_free(bio);
  return text;
}

inline void add_extension(X509* certificate, X509* issuer, int nid, const char* value) {
  X509V3_CTX context;
  X509V3_set_ctx_nodb(&context);
  X509V3_set_ctx(&context, issuer, certificate, nullptr, nullptr, 0);
  X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &context, nid, value);
  REQUIRE(extension != nullptr);
  X509_add_ext(certificate, extension, -1);
  X509_EXTENSION_free(extension);
}

// make signs a certificate for `common_name` with `issuer_key` (its own key when issuer is null).
inline X509* make(EVP_PKEY* key, const char* common_name, bool ca, X509* issuer, EVP_PKEY* issuer_key, long not_before,
                  long not_after, long serial) {
  X509* certificate = X509_new();
  X509_set_version(certificate, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(certificate), serial);
  X509_gmtime_adj(X509_getm_notBefore(certificate), not_before);
  X509_gmtime_adj(X509_getm_notAfter(certificate), not_after);
  X509_set_pubkey(certificate, key);
  X509_NAME* name = X509_get_subject_name(certificate);
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("aem tests"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(common_name), -1, -1, 0);
  X509* signer = issuer != nullptr ? issuer : certificate;
  X509_set_issuer_name(certificate, X509_get_subject_name(signer));
  if (ca) {
    add_extension(certificate, signer, NID_basic_constraints, "critical,CA:TRUE");
    add_extension(certificate, signer, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_extension(certificate, signer, NID_basic_constraints, "critical,CA:FALSE");
    add_extension(certificate, signer, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
    add_extension(certificate, signer, NID_ext_key_usage, "serverAuth,clientAuth");
  }
  add_extension(certificate, signer, NID_subject_key_identifier, "hash");
  REQUIRE(X509_sign(certificate, issuer_key != nullptr ? issuer_key : key, EVP_sha256()) > 0);
  return certificate;
}

inline KeyPair pair_of(X509* certificate, EVP_PKEY* key) { return {pem_of(certificate), pem_of(key)}; }

inline Certificates generate() {
  constexpr long kDay = 24 * 3600;
  EVP_PKEY* ca_key = EVP_EC_gen("P-256");
  EVP_PKEY* server_key = EVP_EC_gen("P-256");
  EVP_PKEY* other_key = EVP_EC_gen("P-256");
  REQUIRE((ca_key != nullptr && server_key != nullptr && other_key != nullptr));
  X509* ca = make(ca_key, "aem test CA", true, nullptr, nullptr, -kDay, 30 * kDay, 1);
  X509* server = make(server_key, "localhost", false, ca, ca_key, -kDay, 30 * kDay, 2);
  X509* expired = make(server_key, "localhost", false, ca, ca_key, -2 * kDay, -kDay, 3);
  X509* self_signed = make(other_key, "localhost", false, nullptr, nullptr, -kDay, 30 * kDay, 4);
  Certificates all{pair_of(ca, ca_key), pair_of(server, server_key), pair_of(expired, server_key),
                   pair_of(self_signed, other_key)};
  for (X509* c : {ca, server, expired, self_signed}) X509_free(c);
  for (EVP_PKEY* k : {ca_key, server_key, other_key}) EVP_PKEY_free(k);
  return all;
}

}  // namespace detail

// certificates returns the process's test certificates (made on the first call).
inline const Certificates& certificates() {
  static const Certificates all = detail::generate();
  return all;
}

}  // namespace tls_test
