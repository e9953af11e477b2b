// tls_options.cpp — load_tls: the HTTPS context from --tls-cert and --tls-key.
#include "options.hpp"

#include <aem/tls/context.hpp>

#include <string>

namespace http {

int load_tls(Options& options) {
  if (options.tls_cert.empty() && options.tls_key.empty()) return -1;
  if (options.tls_cert.empty() || options.tls_key.empty()) return bad_usage("--tls-cert and --tls-key go together");
  // Filled field by field: g++ 12 at -O3 misreads the temporary of a designated initializer
  // here as used uninitialized (-Wmaybe-uninitialized).
  aem::tls::ServerOptions settings;
  settings.credentials.certificate_chain_file = std::string(options.tls_cert);
  settings.credentials.private_key_file = std::string(options.tls_key);
  settings.alpn = {"http/1.1"};
  auto context = aem::tls::Context::server(settings);
  if (!context) return bad_usage("cannot use --tls-cert/--tls-key: " + context.error().message());
  options.server.tls = std::move(*context);
  return -1;
}

}  // namespace http
