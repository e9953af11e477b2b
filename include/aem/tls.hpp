// tls.hpp — TLS on OpenSSL 3: contexts, streams over TcpStream, and on_data over a TLS stream.
#pragma once

#include <aem/tls/context.hpp>
#include <aem/tls/error.hpp>
#include <aem/tls/events.hpp>
#include <aem/tls/stream.hpp>
