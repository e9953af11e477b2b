// handover_listener.hpp — the server's listener: bound to --host/--port, or, with --handover
// PATH, taken over from the server that offers it on PATH (an upgrade without downtime) and
// offered there in turn to the next one.
#pragma once

#include "stop_signals.hpp"

#include <aem/handover.hpp>
#include <aem/net/address.hpp>
#include <aem/net/tcp.hpp>

#include <optional>
#include <string_view>

namespace http {

// Listening is the listener, and the Handover that offers it when --handover is given.
struct Listening {
  aem::TcpListener listener;
  std::optional<aem::Handover> handover;
};

// open_listener binds `address`, or with a non-empty `handover_path` takes the listener named
// "http" from the server offering on that path (a first start binds it); a successor's taking
// over is reported to `stop`. Call from a capsule. Prints the reason and returns nothing if the
// listener cannot be had.
std::optional<Listening> open_listener(const aem::SocketAddress& address, std::string_view handover_path,
                                       StopSignals& stop);

// offer_to_successors tells the predecessor (if any) that this server accepts now and starts
// offering the listener on the hand-over path. Call from a capsule once accepting has started.
// False (after a message) if offering failed.
bool offer_to_successors(Listening& listening);

}  // namespace http
