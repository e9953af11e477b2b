// serve_registration.cpp — the registration style: on_accept hands each connection to a core
// (round-robin), which registers an on_data handler for it; the handler feeds each receive to
// the connection's Session. The handler owns the connection: when the stream ends, the
// registration ends and destroying the handler closes the socket.
#include "http_response.hpp"
#include "session.hpp"
#include "styles.hpp"
#include "tls_serve.hpp"

#include <aem/core_arena.hpp>
#include <aem/cross_core.hpp>
#include <aem/net/events.hpp>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <utility>

namespace http {
namespace {

// Connection is a stream and its session, kept alive by the on_data handler, and the pass of
// the server's gate that lets the shutdown cancel it at its deadline (after the stream: it
// names it).
struct Connection {
  Connection(aem::TcpStream accepted, Admission admission, Server& server)
      : stream(std::move(accepted)), session(stream, std::move(admission), server) {}
  aem::TcpStream stream;
  Session session;
  aem::Gate::Pass pass;
};

// kQueuedReceives is the on_data registration's queue bound (see watch).
constexpr std::uint32_t kQueuedReceives = 16;

// watch registers a connection's data handler on the calling core.
void watch(aem::TcpStream accepted, Admission admission, Server& server) {
  if (server.config.tls.valid()) return watch_tls(std::move(accepted), std::move(admission), server);
  auto connection = std::make_shared<Connection>(std::move(accepted), std::move(admission), server);
  auto pass = server.gate.enter(connection->stream);
  if (!pass || !connection->session.start()) return;  // the server drains: not a request started yet
  connection->pass = std::move(*pass);
  auto id = aem::on_data(
      connection->stream,
      [connection](aem::EventData bytes) {
        (void)connection->session.on_received(
            std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
      },
      // One activation at a time: answers stay in order. The handler writes its answers with
      // write_all, so it suspends while the client does not read; the receives that come in
      // meanwhile wait in the registration's queue. A short queue bounds them (kQueuedReceives
      // receives of at most Config::recv_buffer_size bytes): at the bound the receive pauses and
      // the client's further requests wait in the kernel, so a client that pipelines without
      // reading holds a few tens of KiB here, not the default bound's 1,024 receives (~4 MiB).
      {.exec = aem::Executor::keepalive, .queue_bound = kQueuedReceives});
  if (!id) std::fprintf(stderr, "http_server: on_data: %s (connection dropped)\n", id.error().message().c_str());
}

}  // namespace

void serve_registrations(aem::TcpListener& listener, Server& server, aem::WaitGroup& stop) {
  const unsigned cores = aem::this_core::count();
  auto accepting = aem::on_accept(
      listener,
      [&server, cores, next = 0u](aem::TcpStream stream) mutable {
        (void)stream.set_nodelay(true);
        if (!server.admit()) return refuse(stream);
        const unsigned core = next;
        next = (next + 1) % cores;
        if (core == aem::this_core::id()) return watch(std::move(stream), Admission(server), server);
        auto handed = aem::post(core, [s = std::move(stream), a = Admission(server), &server]() mutable {
          watch(std::move(s), std::move(a), server);
        });
        if (!handed) std::fprintf(stderr, "http_server: post: %s (connection dropped)\n", handed.error().message().c_str());
      },
      // The handler never suspends (refuse queues its answer; watch registers; post hands
      // over), so it runs on the dispatcher: an accepted connection costs no capsule switch.
      {.exec = aem::Executor::inline_handler,
       .on_error = [](std::error_code error) { std::fprintf(stderr, "http_server: accept paused: %s\n", error.message().c_str()); }});
  if (!accepting) {
    std::fprintf(stderr, "http_server: on_accept: %s\n", accepting.error().message().c_str());
    return;
  }
  stop.wait();
  (void)aem::cancel(*accepting);
}

void refuse(aem::TcpStream& stream) {
  char head[kMaxResponseHead];
  ResponseHead response;
  response.status = 503;
  response.close = true;
  const std::size_t length = format_head(response, http_date(), head);
  auto answer = aem::this_core::allocate_data(length);
  if (!answer) return;  // no event data left on this core: the connection just closes
  std::memcpy(answer->data(), head, length);
  (void)stream.send(std::move(*answer));
}

}  // namespace http
