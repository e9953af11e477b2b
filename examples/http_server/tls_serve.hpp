// tls_serve.hpp — HTTPS connections in either style: the handshake first, under the header
// timeout, then the same Session over the TLS stream.
#pragma once

#include "server.hpp"

#include <aem/net/tcp.hpp>

namespace http {

// serve_tls_capsule serves one HTTPS connection in the calling capsule (capsule style).
void serve_tls_capsule(aem::TcpStream tcp, Admission admission, Server& server);

// watch_tls starts a capsule for the handshake of one HTTPS connection on the calling core,
// which then registers an on_data handler over TLS for its requests and returns the capsule to
// the pool (registration style). Call on a core (a capsule or an inline handler).
void watch_tls(aem::TcpStream tcp, Admission admission, Server& server);

}  // namespace http
