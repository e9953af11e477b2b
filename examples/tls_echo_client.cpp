// tls_echo_client — sends a message over TLS, prints the answer, ends with close_notify: the
// client side of aem::tls, as documentation (see tls_echo_server.cpp).
//
//   aem_tls_echo_client --ca ca.pem [--host localhost] [--port 8443] [--message hello] [--alpn PROTO]
//
// The server's certificate is verified against --ca and its name against --host (also sent as
// SNI). Exit status 0 when the echo matches, 1 otherwise.
#include <aem/net.hpp>
#include <aem/runtime.hpp>
#include <aem/tls.hpp>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>

using namespace std::chrono_literals;

int main(int argc, char** argv) {
  std::string ca, host = "localhost", message = "hello", alpn;
  std::uint16_t port = 8443;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view flag = argv[i];
    const std::string_view value = argv[i + 1];
    if (flag == "--ca") ca = value;
    else if (flag == "--host") host = value;
    else if (flag == "--message") message = value;
    else if (flag == "--alpn") alpn = value;
    else if (flag == "--port") std::from_chars(value.data(), value.data() + value.size(), port);
    else argc = 0;
  }
  if (argc % 2 == 0 || ca.empty() || message.empty()) {
    std::fprintf(stderr, "usage: aem_tls_echo_client --ca FILE [--host NAME] [--port N] [--message TEXT] [--alpn PROTO]\n");
    return 2;
  }
  aem::tls::ClientOptions options{.trusted_cas = {.file = ca, .pem = {}, .use_system_store = false}};
  if (!alpn.empty()) options.alpn = {alpn};
  auto context = aem::tls::Context::client(options);
  if (!context) {
    std::fprintf(stderr, "tls_echo_client: %s\n", context.error().message().c_str());
    return 1;
  }
  aem::Runtime rt(aem::Config{.cores = 1});
  return rt.run([&] {
    auto stream = aem::tls::Stream::connect(*context, host, port, 10s);
    if (!stream) {
      // A refused certificate says why: "certificate verify failed: hostname mismatch", ...
      std::fprintf(stderr, "tls_echo_client: %s\n", stream.error().message().c_str());
      return 1;
    }
    std::printf("%.*s, %.*s, ALPN '%.*s'\n", static_cast<int>(stream->version().size()), stream->version().data(),
                static_cast<int>(stream->cipher().size()), stream->cipher().data(), static_cast<int>(stream->alpn().size()),
                stream->alpn().data());
    std::string answer(message.size(), '\0');
    if (auto sent = stream->write_all(message, 10s); !sent) return 1;
    if (auto got = stream->read_exact(std::span(answer), 10s); !got) {
      std::fprintf(stderr, "tls_echo_client: read: %s\n", got.error().message().c_str());
      return 1;
    }
    std::printf("%s\n", answer.c_str());
    (void)stream->shutdown(5s);
    return answer == message ? 0 : 1;
  });
}
