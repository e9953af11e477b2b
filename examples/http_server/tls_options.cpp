// tls_options.cpp — load_tls: the HTTPS context from --tls-cert and --tls-key.
#include "options.hpp"

#include <aem/tls/context.hpp>

#include <string>

namespace http {

int load_tls(Options& options) {
  if (options.tls_cert.empty() && options.tls_key.empty()) return -1;
  if (options.tls_cert.empty() || options.tls_key.empty()) return bad_usage("--tls-cert and --tls-key go together");
  auto context = aem::tls::Context::server(
      {.credentials = {.certificate_chain_file = std::string(options.tls_cert), .private_key_file = std::string(options.tls_key)},
       .alpn = {"http/1.1"}});
  if (!context) return bad_usage("cannot use --tls-cert/--tls-key: " + context.error().message());
  options.server.tls = std::move(*context);
  return -1;
}

}  // namespace http
