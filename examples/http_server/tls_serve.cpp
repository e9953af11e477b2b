// tls_serve.cpp — HTTPS: a tls::Stream over the accepted connection; its handshake counts as
// the first request's head (header timeout, drain), then the Session reads and writes through it.
#include "tls_serve.hpp"

#include "session.hpp"

#include <aem/capsule.hpp>
#include <aem/tls/events.hpp>
#include <aem/tls/stream.hpp>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string_view>
#include <utility>

namespace http {
namespace {

// TlsConnection is what an HTTPS registration keeps alive: the stream, its session, and the
// gate's pass naming the TCP stream beneath.
struct TlsConnection {
  TlsConnection(aem::tls::Stream tls, Admission admission, Server& server)
      : stream(std::move(tls)), session(stream.tcp(), std::move(admission), server, &stream) {}
  aem::tls::Stream stream;
  Session session;
  aem::Gate::Pass pass;
};

// kQueuedReceives bounds the receives waiting for the handler, as the plain registration style.
constexpr std::uint32_t kQueuedReceives = 16;

void handshake_and_watch(aem::TcpStream tcp, Admission admission, Server& server) {
  auto stream = aem::tls::Stream::server(server.config.tls, std::move(tcp));
  if (!stream) return;
  auto connection = std::make_shared<TlsConnection>(std::move(*stream), std::move(admission), server);
  auto pass = server.gate.enter(connection->stream.tcp());
  if (!pass) return;  // the server drains
  connection->pass = std::move(*pass);
  if (!connection->session.handshake() || !connection->session.start()) return;
  // The registration holds the connection through the stream's aliasing pointer.
  std::shared_ptr<aem::tls::Stream> held(connection, &connection->stream);
  auto id = aem::tls::on_data(
      std::move(held),
      [session = &connection->session](aem::EventData bytes) {
        (void)session->on_received(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
      },
      {.exec = aem::Executor::keepalive, .queue_bound = kQueuedReceives});
  if (!id) std::fprintf(stderr, "http_server: on_data: %s (connection dropped)\n", id.error().message().c_str());
}

}  // namespace

void serve_tls_capsule(aem::TcpStream tcp, Admission admission, Server& server) {
  auto stream = aem::tls::Stream::server(server.config.tls, std::move(tcp));
  if (!stream) return;
  auto pass = server.gate.enter(stream->tcp());  // the shutdown cancels the connection at its deadline
  if (!pass) return;
  Session session(stream->tcp(), std::move(admission), server, &*stream);
  if (!session.handshake()) return;
  session.serve();
}

void watch_tls(aem::TcpStream tcp, Admission admission, Server& server) {
  auto handshaker = aem::spawn([t = std::move(tcp), a = std::move(admission), &server]() mutable {
    handshake_and_watch(std::move(t), std::move(a), server);
  });
  if (handshaker) handshaker->detach();
  else std::fprintf(stderr, "http_server: spawn: %s (connection dropped)\n", handshaker.error().message().c_str());
}

}  // namespace http
