// handover_listener.cpp — open_listener and offer_to_successors.
#include "handover_listener.hpp"

#include <cstdio>
#include <string>
#include <utility>

namespace http {

std::optional<Listening> open_listener(const aem::SocketAddress& address, std::string_view handover_path,
                                       StopSignals& stop) {
  Listening listening;
  if (handover_path.empty()) {
    auto bound = aem::TcpListener::bind(address);
    if (!bound) {
      std::fprintf(stderr, "http_server: cannot listen on %s: %s\n", address.to_string().c_str(),
                   bound.error().message().c_str());
      return std::nullopt;
    }
    listening.listener = std::move(*bound);
    return listening;
  }
  aem::HandoverOptions options;
  options.path = std::string(handover_path);
  options.on_handed_over = [&stop](const aem::HandoverPeer& successor) { stop.handed_over(successor.pid); };
  options.log = [](std::string_view line) {
    std::fprintf(stderr, "http_server: handover: %.*s\n", static_cast<int>(line.size()), line.data());
  };
  auto handover = aem::Handover::claim(std::move(options));
  if (!handover) {
    std::fprintf(stderr, "http_server: cannot take over from the server on %.*s: %s\n",
                 static_cast<int>(handover_path.size()), handover_path.data(), handover.error().message().c_str());
    return std::nullopt;
  }
  auto listener = handover->tcp_listener("http", address);
  if (!listener) {
    std::fprintf(stderr, "http_server: cannot listen on %s: %s\n", address.to_string().c_str(),
                 listener.error().message().c_str());
    return std::nullopt;
  }
  listening.listener = std::move(*listener);
  listening.handover.emplace(std::move(*handover));
  return listening;
}

bool offer_to_successors(Listening& listening) {
  if (!listening.handover) return true;
  if (auto ready = listening.handover->ready(); !ready) {
    std::fprintf(stderr, "http_server: cannot offer the listener for a hand-over: %s\n", ready.error().message().c_str());
    return false;
  }
  return true;
}

}  // namespace http
