// context_state.hpp — what a tls::Context handle points to. Private to the library.
#pragma once

#include <aem/tls/context.hpp>

#include <openssl/ssl.h>

#include <functional>
#include <string>
#include <string_view>

namespace aem::tls::detail {

struct ContextState {
  ContextState() = default;
  ContextState(const ContextState&) = delete;
  ContextState& operator=(const ContextState&) = delete;
  ~ContextState() { SSL_CTX_free(ctx); }

  SSL_CTX* ctx = nullptr;
  bool server = false;
  bool verify_peer = false;
  bool session_resumption = false;  // a client keeps the tickets it gets
  std::string alpn_wire;            // ALPN protocols in wire format (length-prefixed)
  std::function<Context(std::string_view)> select_context;
};

}  // namespace aem::tls::detail
