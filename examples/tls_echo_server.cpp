// tls_echo_server — a TLS echo server in both of aem's styles, as documentation of aem::tls.
//
//   aem_tls_echo_server --cert server.pem --key server.key [--port 8443] [--style capsule|registration]
//   aem_tls_echo_client --ca ca.pem --port 8443 --message hello
//   openssl s_client -connect 127.0.0.1:8443 -CAfile ca.pem -servername localhost
//
// capsule: a capsule per connection runs the handshake and a read/write loop. registration: a
// capsule per connection runs the handshake only, then an on_data registration over TLS echoes
// each decrypted receive; the idle connection holds no capsule. Stops on SIGINT or SIGTERM.
#include <aem/capsule.hpp>
#include <aem/net.hpp>
#include <aem/runtime.hpp>
#include <aem/signal.hpp>
#include <aem/tls.hpp>
#include <aem/wait_group.hpp>

#include <array>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

using namespace std::chrono_literals;

namespace {

// serve_capsule: handshake, then echo until the client's close_notify; ours ends the session.
void serve_capsule(const aem::tls::Context& context, aem::TcpStream tcp) {
  auto stream = aem::tls::Stream::server(context, std::move(tcp));
  if (!stream) return;
  if (auto shaken = stream->handshake(10s); !shaken) {
    std::fprintf(stderr, "tls_echo_server: handshake: %s\n", shaken.error().message().c_str());
    return;
  }
  std::array<std::byte, 16 * 1024> buffer;
  for (;;) {
    auto n = stream->read(buffer, 60s);
    if (!n) {
      // tls_errc::truncated: the client closed without close_notify.
      std::fprintf(stderr, "tls_echo_server: read: %s\n", n.error().message().c_str());
      return;
    }
    if (*n == 0) break;  // close_notify
    if (!stream->write_all(std::span(buffer).first(*n), 60s)) return;
  }
  (void)stream->shutdown(5s);
}

// serve_registration: handshake in this capsule, then hand the connection to an on_data
// registration over TLS, which keeps the stream alive until it ends.
void serve_registration(const aem::tls::Context& context, aem::TcpStream tcp) {
  auto stream = aem::tls::Stream::server(context, std::move(tcp));
  if (!stream || !stream->handshake(10s)) return;
  auto shared = std::make_shared<aem::tls::Stream>(std::move(*stream));
  auto id = aem::tls::on_data(
      shared,
      [raw = shared.get()](aem::EventData plain) {
        // The registration owns the stream; the handler runs while it lives.
        if (!raw->write_all(plain.bytes(), 60s)) (void)raw->tcp().shutdown(aem::Shutdown::both);
      },
      {.exec = aem::Executor::keepalive});
  if (!id) std::fprintf(stderr, "tls_echo_server: on_data: %s\n", id.error().message().c_str());
}

int usage() {
  std::fprintf(stderr, "usage: aem_tls_echo_server --cert FILE --key FILE [--port N] [--style capsule|registration]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string cert, key;
  std::string_view style = "capsule";
  std::uint16_t port = 8443;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view flag = argv[i];
    const std::string_view value = argv[i + 1];
    if (flag == "--cert") cert = value;
    else if (flag == "--key") key = value;
    else if (flag == "--style") style = value;
    else if (flag == "--port") std::from_chars(value.data(), value.data() + value.size(), port);
    else return usage();
  }
  if (argc % 2 == 0 || cert.empty() || key.empty() || (style != "capsule" && style != "registration")) return usage();

  auto context = aem::tls::Context::server({.credentials = {.certificate_chain_file = cert, .private_key_file = key}});
  if (!context) {
    std::fprintf(stderr, "tls_echo_server: %s\n", context.error().message().c_str());
    return 1;
  }
  auto listener = aem::TcpListener::bind(aem::SocketAddress::ipv4_loopback(port));
  if (!listener) {
    std::fprintf(stderr, "tls_echo_server: listen: %s\n", listener.error().message().c_str());
    return 1;
  }
  std::printf("listening on %s\n", listener->local_address()->to_string().c_str());
  std::fflush(stdout);
  aem::Runtime rt(aem::Config{.cores = 1});
  return rt.run([&] {
    aem::WaitGroup stop(1);
    auto signals = aem::on_signal(SIGINT, [&stop, fired = false]() mutable {
      if (!std::exchange(fired, true)) stop.done();
    });
    if (!signals) return 1;
    auto acceptor = aem::spawn([&] {
      while (auto tcp = listener->accept()) {
        (void)tcp->set_nodelay(true);
        auto connection = aem::spawn([&, s = std::move(*tcp)]() mutable {
          if (style == "capsule") serve_capsule(*context, std::move(s));
          else serve_registration(*context, std::move(s));
        });
        if (connection) connection->detach();
      }
    });
    if (!acceptor) return 1;
    stop.wait();
    listener->cancel();
    acceptor->join();
    return 0;
  });
}
