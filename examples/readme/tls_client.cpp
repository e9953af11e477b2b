// The README's TLS section: a verified client and a server in the capsule style.
#include <aem/capsule.hpp>
#include <aem/net.hpp>
#include <aem/runtime.hpp>
#include <aem/tls.hpp>

#include <array>
#include <chrono>
#include <cstdio>

using namespace std::chrono_literals;

// readme-begin
// A client: the server's certificate is checked against ca.pem and the name "localhost".
aem::Result<void> ask(const aem::tls::Context& client) {
  auto stream = aem::tls::Stream::connect(client, "localhost", 8443, 5s);  // TCP + handshake
  if (!stream) return stream.error();  // e.g. "certificate verify failed: hostname mismatch"
  if (auto sent = stream->write_all("ping\n", 5s); !sent) return sent.error();
  std::array<char, 64> answer;
  auto n = stream->read(answer, 5s);   // 0: the server's close_notify
  if (!n) return n.error();            // tls_errc::truncated: closed without close_notify
  return stream->shutdown(5s);         // our close_notify
}

// A server connection, one capsule each: handshake, then blocking-style reads and writes.
void serve(const aem::tls::Context& server, aem::TcpStream tcp) {
  auto stream = aem::tls::Stream::server(server, std::move(tcp));
  if (!stream || !stream->handshake(10s)) return;   // a stalled handshake meets its deadline
  std::array<std::byte, 4096> buffer;
  while (auto n = stream->read(buffer, 30s)) {
    if (*n == 0 || !stream->write_all(std::span(buffer).first(*n), 30s)) break;
  }
  (void)stream->shutdown(5s);
}

int main() {
  auto server = aem::tls::Context::server({.credentials = {.certificate_chain_file = "cert.pem",
                                                           .private_key_file = "key.pem"},
                                           .alpn = {"http/1.1"}});
  auto client = aem::tls::Context::client({.trusted_cas = {.file = "ca.pem"}});
  if (!server || !client) return 1;  // the message says which file and why
  // ...
// readme-end
  aem::Runtime rt(aem::Config{.cores = 1});
  return rt.run([&] {
    auto listener = aem::TcpListener::bind(aem::SocketAddress::ipv4_loopback(8443));
    if (!listener) return 1;
    auto acceptor = aem::spawn([&] {
      if (auto tcp = listener->accept(5s)) serve(*server, std::move(*tcp));
    });
    auto asked = ask(*client);
    if (acceptor) acceptor->join();
    std::printf("%s\n", asked ? "ok" : asked.error().message().c_str());
    return asked ? 0 : 1;
  });
}
