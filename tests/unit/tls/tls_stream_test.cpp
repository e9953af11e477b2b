// tls_stream_test.cpp — tls::Stream in blocking style: handshake and echo, verification
// failures, ALPN, resumption, close_notify against truncation, deadlines, garbage, full duplex.
#include "unit/tls/tls_helpers.hpp"

#include <aem/wait_group.hpp>

#include <random>

using namespace std::chrono_literals;
using tls_test::certificates;

namespace {


// handshake_error connects a client with `client` to a server with `server` and returns the
// client's handshake error (empty on success) and the server log.
std::string handshake_error(const aem::tls::Context& server, const aem::tls::Context& client, std::string_view name,
                            std::string* server_error = nullptr) {
  std::string error;
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([&] {
    tls_test::EchoServer echo;
    auto acceptor = echo.start(server, 1);
    auto tcp = aem::TcpStream::connect(aem::SocketAddress::ipv4_loopback(echo.port()), 5s);
    REQUIRE(tcp);
    auto stream = aem::tls::Stream::client(client, std::move(*tcp), name);
    REQUIRE(stream);
    auto shaken = stream->handshake(5s);
    if (!shaken) error = shaken.error().message();
    (void)stream->close();
    acceptor.join();
    for (int i = 0; i < 500 && echo.log.handshakes + echo.log.failures == 0; ++i) aem::this_capsule::sleep_for(10ms);
    if (server_error != nullptr) *server_error = echo.log.last_error;
  });
  return error;
}

}  // namespace

TEST_CASE("tls: handshake and echo both ways, with the negotiated parameters") {
  aem::Runtime rt(aem_test::config_for(2));
  rt.run([] {
    auto server_context = tls_test::server_context();
    auto listener = aem_test::loopback_listener();
    const auto port = listener.local_address()->port();
    std::string server_saw;
    auto server = aem::spawn(
        [&] {
          auto stream = tls_test::accept_tls(listener, server_context);
          CHECK(stream.server_name().empty());  // the client connected to an address: no SNI
          CHECK(!stream.peer_certificate());  // no client certificate asked for
          REQUIRE(stream.write_all("hello from the server", 5s));
          std::array<char, 64> buffer{};
          auto n = stream.read(buffer, 5s);
          REQUIRE(n);
          server_saw.assign(buffer.data(), *n);
          REQUIRE(stream.write_all("echo: " + server_saw, 5s));
          auto end = stream.read(buffer, 5s);
          CHECK((end && *end == 0));  // the client's close_notify
          CHECK(stream.close_notify_received());
          CHECK(stream.shutdown(5s));
        },
        {.core = 1});
    REQUIRE(server);
    auto stream = aem::tls::Stream::connect(tls_test::client_context(), "127.0.0.1", port, 10s);
    // The certificate names 127.0.0.1 too (an IP SAN): no SNI is sent for an address.
    REQUIRE_MESSAGE(stream, stream.error().message());
    CHECK(stream->version() == "TLSv1.3");
    CHECK(!stream->cipher().empty());
    CHECK(stream->alpn().empty());
    auto peer = stream->peer_certificate();
    REQUIRE(peer);
    CHECK(peer->subject.find("CN=localhost") != std::string::npos);
    CHECK(peer->issuer.find("CN=aem test CA") != std::string::npos);
    CHECK(!peer->der.empty());
    std::array<char, 64> buffer{};
    REQUIRE(stream->read_exact(std::span(buffer).first(21), 5s));
    CHECK(std::string_view(buffer.data(), 21) == "hello from the server");
    REQUIRE(stream->write_all("ping", 5s));
    REQUIRE(stream->read_exact(std::span(buffer).first(10), 5s));
    CHECK(std::string_view(buffer.data(), 10) == "echo: ping");
    REQUIRE(stream->shutdown(5s));
    auto end = stream->read(buffer, 5s);
    CHECK((end && *end == 0));
    server->join();
    CHECK(server_saw == "ping");
  });
}

TEST_CASE("tls: 1 MiB in random-sized writes echoed byte for byte, reading and writing in two capsules") {
  tls_test::run_with_echo(2, tls_test::server_context(), 1, [](tls_test::EchoServer& echo) {
    auto stream = aem::tls::Stream::connect(tls_test::client_context(), "localhost", echo.port(), 10s);
    REQUIRE_MESSAGE(stream, stream.error().message());
    std::vector<std::byte> sent(1 << 20);
    std::mt19937 random(20);
    for (auto& b : sent) b = static_cast<std::byte>(random());
    // The reader runs on the other core while this capsule writes: full duplex on one stream.
    std::vector<std::byte> received(sent.size());
    auto reader = aem::spawn(
        [&] {
          auto done = stream->read_exact(received, 30s);
          CHECK_MESSAGE(done, done.error().message());
        },
        {.core = 1});
    REQUIRE(reader);
    std::size_t offset = 0;
    while (offset < sent.size()) {
      const std::size_t size = std::min<std::size_t>(1 + random() % 40000, sent.size() - offset);
      auto written = stream->write_all(std::span(sent).subspan(offset, size), 30s);
      REQUIRE_MESSAGE(written, written.error().message());
      offset += size;
    }
    reader->join();
    CHECK(received == sent);
    tls_test::end_both_ways(*stream);
  });
}

TEST_CASE("tls: a full-duplex proxy between a TLS client and a TLS echo server, one capsule per direction") {
  tls_test::run_with_echo(2, tls_test::server_context(), 1, [](tls_test::EchoServer& echo) {
    auto front = aem_test::loopback_listener();
    const auto front_port = front.local_address()->port();
    auto proxy = aem::spawn([&] {
      auto downstream = tls_test::accept_tls(front, tls_test::server_context());
      auto upstream = aem::tls::Stream::connect(tls_test::client_context(), "localhost", echo.port(), 10s);
      REQUIRE(upstream);
      // client -> echo in a capsule on core 1, echo -> client here.
      auto forward = aem::spawn(
          [&] {
            std::array<std::byte, 7000> buffer;
            for (;;) {
              auto n = downstream.read(buffer, 30s);
              if (!n || *n == 0) break;
              if (!upstream->write_all(std::span(buffer).first(*n), 30s)) break;
            }
            (void)upstream->shutdown(5s);
          },
          {.core = 1});
      REQUIRE(forward);
      std::array<std::byte, 5000> buffer;
      for (;;) {
        auto n = upstream->read(buffer, 30s);
        if (!n || *n == 0) break;
        if (!downstream.write_all(std::span(buffer).first(*n), 30s)) break;
      }
      forward->join();
      (void)downstream.shutdown(5s);
    });
    REQUIRE(proxy);
    auto stream = aem::tls::Stream::connect(tls_test::client_context(), "localhost", front_port, 10s);
    REQUIRE(stream);
    std::vector<std::byte> sent(300 * 1024);
    std::mt19937 random(7);
    for (auto& b : sent) b = static_cast<std::byte>(random());
    std::vector<std::byte> received(sent.size());
    auto reader = aem::spawn([&] { CHECK(stream->read_exact(received, 30s)); });
    REQUIRE(reader);
    REQUIRE(stream->write_all(sent, 30s));
    reader->join();
    CHECK(received == sent);
    tls_test::end_both_ways(*stream, 10s);
    proxy->join();
  });
}

TEST_CASE("tls: a wrong host name, an expired and a self-signed certificate are rejected with clear errors") {
  std::string server_error;
  const std::string wrong_name =
      handshake_error(tls_test::server_context(), tls_test::client_context(), "example.com", &server_error);
  INFO("wrong name: " << wrong_name << " / server: " << server_error);
  CHECK(wrong_name.find("certificate verify failed") != std::string::npos);
  CHECK(wrong_name.find("hostname mismatch") != std::string::npos);
  CHECK(!server_error.empty());  // the client's alert ended the server's handshake too

  const std::string expired = handshake_error(tls_test::server_context(certificates().expired), tls_test::client_context(), "localhost");
  INFO("expired: " << expired);
  CHECK(expired.find("certificate has expired") != std::string::npos);

  const std::string self_signed =
      handshake_error(tls_test::server_context(certificates().self_signed), tls_test::client_context(), "localhost");
  INFO("self-signed: " << self_signed);
  CHECK(self_signed.find("self") != std::string::npos);
  CHECK(self_signed.find("signed certificate") != std::string::npos);
}

TEST_CASE("tls: the error codes say what failed") {
  auto missing = aem::tls::Context::server({.credentials = {.certificate_chain_file = "/nonexistent/cert.pem",
                                                            .private_key_file = "/nonexistent/key.pem"}});
  REQUIRE(!missing);
  CHECK(missing.error().message().find("No such file") != std::string::npos);
  auto none = aem::tls::Context::server({});
  REQUIRE(!none);
  CHECK(none.error() == aem::tls::tls_errc::no_certificate);
  auto mismatch = aem::tls::Context::server({.credentials = {.certificate_chain_pem = certificates().server.certificate_pem,
                                                             .private_key_pem = certificates().self_signed.key_pem}});
  REQUIRE(!mismatch);
  CHECK(mismatch.error() == aem::tls::tls_errc::key_mismatch);
  auto garbage = aem::tls::Context::server({.credentials = {.certificate_chain_pem = "not a certificate",
                                                            .private_key_pem = "nor a key"}});
  REQUIRE(!garbage);
  CHECK(std::string(garbage.error().category().name()) == "aem.tls");
  auto long_alpn = aem::tls::Context::client({.alpn = {std::string(300, 'x')}});
  REQUIRE(!long_alpn);
  CHECK(long_alpn.error() == aem::tls::tls_errc::bad_alpn);
  auto ciphers = aem::tls::Context::client({.cipher_list = "NO-SUCH-CIPHER"});
  REQUIRE(!ciphers);
  CHECK(!ciphers.error().message().empty());
}

TEST_CASE("tls: ALPN agreed on the server's preference, and refused when nothing matches") {
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([] {
    tls_test::EchoServer echo;
    auto acceptor = echo.start(tls_test::server_context(certificates().server, {"h2", "http/1.1"}), 2);
    auto agreed = aem::tls::Stream::connect(tls_test::client_context({"http/1.1", "h2"}), "localhost", echo.port(), 10s);
    REQUIRE_MESSAGE(agreed, agreed.error().message());
    CHECK(agreed->alpn() == "h2");
    REQUIRE(agreed->shutdown(5s));
    auto refused = aem::tls::Stream::connect(tls_test::client_context({"spdy/1"}), "localhost", echo.port(), 10s);
    REQUIRE(!refused);
    INFO(refused.error().message());
    CHECK(refused.error().message().find("no application protocol") != std::string::npos);
    acceptor.join();
    for (int i = 0; i < 500 && echo.log.failures == 0; ++i) aem::this_capsule::sleep_for(10ms);
    CHECK(echo.log.failures == 1);
  });
}

TEST_CASE("tls: the second connection resumes the first one's session") {
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([] {
    tls_test::EchoServer echo;
    auto acceptor = echo.start(tls_test::server_context(), 2);
    auto client = tls_test::client_context();
    aem::tls::Session saved;
    {
      auto first = aem::tls::Stream::connect(client, "localhost", echo.port(), 10s);
      REQUIRE(first);
      CHECK(!first->resumed());
      REQUIRE(first->write_all("x", 5s));
      std::array<char, 1> one;
      REQUIRE(first->read_exact(one, 5s));  // the TLS 1.3 tickets come with this read
      saved = first->session();
      REQUIRE(first->shutdown(5s));
    }
    REQUIRE(saved);
    auto second = aem::tls::Stream::connect(client, "localhost", echo.port(), 10s, saved);
    REQUIRE(second);
    CHECK(second->resumed());
    REQUIRE(second->shutdown(5s));
    acceptor.join();
    for (int i = 0; i < 500 && echo.log.handshakes < 2; ++i) aem::this_capsule::sleep_for(10ms);
    CHECK(echo.log.resumed == 1);
  });
}

TEST_CASE("tls: close_notify reads as the end, a close without it as truncation") {
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([] {
    tls_test::TlsListener server_side;
    auto server = aem::spawn([&] {
      for (bool clean : {true, false}) {
        auto stream = server_side.accept();
        REQUIRE(stream.write_all("bye", 5s));
        if (clean) REQUIRE(stream.shutdown(5s));
        (void)stream.close();  // without shutdown: no close_notify
      }
    });
    REQUIRE(server);
    auto client = tls_test::client_context();
    for (bool clean : {true, false}) {
      auto stream = aem::tls::Stream::connect(client, "localhost", server_side.port, 10s);
      REQUIRE(stream);
      std::array<char, 3> bye;
      REQUIRE(stream->read_exact(bye, 5s));
      CHECK(std::string_view(bye.data(), 3) == "bye");
      std::array<char, 8> more;
      auto end = stream->read(more, 5s);
      if (clean) {
        CHECK((end && *end == 0));
        CHECK(stream->close_notify_received());
      } else {
        REQUIRE(!end);
        CHECK(end.error() == aem::tls::tls_errc::truncated);
        CHECK(!stream->close_notify_received());
        auto after = stream->read(more, 5s);
        CHECK((!after && after.error() == aem::tls::tls_errc::stream_failed));
      }
    }
    server->join();
  });
}

TEST_CASE("tls: a peer that stalls in the handshake meets the deadline, on both sides") {
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([] {
    auto listener = aem_test::loopback_listener();
    const auto address = aem::SocketAddress::ipv4_loopback(listener.local_address()->port());
    // A server whose client sends half a ClientHello and stops.
    auto silent = aem::TcpStream::connect(address, 5s);
    REQUIRE(silent);
    REQUIRE(silent->write_all(std::string_view("\x16\x03\x01\x02\x00\x01\x00", 7), 5s));
    auto tcp = listener.accept(5s);
    REQUIRE(tcp);
    auto server = aem::tls::Stream::server(tls_test::server_context(), std::move(*tcp));
    REQUIRE(server);
    auto shaken = server->handshake(200ms);
    REQUIRE(!shaken);
    CHECK(shaken.error() == aem::errc::timed_out);
    // A client whose server accepts and never answers.
    auto peer = aem::TcpStream::connect(address, 5s);
    REQUIRE(peer);
    auto client = aem::tls::Stream::client(tls_test::client_context(), std::move(*peer), "localhost");
    REQUIRE(client);
    auto client_shaken = client->handshake(200ms);
    REQUIRE(!client_shaken);
    CHECK(client_shaken.error() == aem::errc::timed_out);
    auto accepted = listener.accept(5s);  // held open, silent, until the end of the test
    CHECK(accepted);
  });
}

TEST_CASE("tls: garbage instead of a ClientHello fails that connection only, the server goes on serving") {
  tls_test::run_with_echo(1, tls_test::server_context(), 2, [](tls_test::EchoServer& echo) {
    auto raw = aem::TcpStream::connect(aem::SocketAddress::ipv4_loopback(echo.port()), 5s);
    REQUIRE(raw);
    REQUIRE(raw->write_all("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", 5s));
    // The server answers with an alert at most, then closes.
    std::array<std::byte, 256> answer;
    std::size_t total = 0;
    for (;;) {
      auto n = raw->read(answer, 5s);
      REQUIRE(n);
      if (*n == 0) break;
      total += *n;
    }
    CHECK(total < answer.size());
    for (int i = 0; i < 500 && echo.log.failures == 0; ++i) aem::this_capsule::sleep_for(10ms);
    CHECK(echo.log.failures == 1);
    INFO(echo.log.last_error);
    CHECK(echo.log.last_error.find("http request") != std::string::npos);
    auto good = aem::tls::Stream::connect(tls_test::client_context(), "localhost", echo.port(), 10s);
    REQUIRE(good);
    REQUIRE(good->write_all("still here", 5s));
    std::array<char, 10> back;
    REQUIRE(good->read_exact(back, 5s));
    CHECK(std::string_view(back.data(), back.size()) == "still here");
    REQUIRE(good->shutdown(5s));
  });
}

TEST_CASE("tls: cancel from another capsule ends a blocked read and leaves the stream usable") {
  tls_test::run_with_echo(2, tls_test::server_context(), 1, [](tls_test::EchoServer& echo) {
    auto stream = aem::tls::Stream::connect(tls_test::client_context(), "localhost", echo.port(), 10s);
    REQUIRE(stream);
    auto canceller = aem::spawn(
        [&] {
          aem::this_capsule::sleep_for(50ms);
          stream->cancel();
        },
        {.core = 1});
    REQUIRE(canceller);
    std::array<char, 4> buffer;
    auto n = stream->read(buffer, 10s);
    REQUIRE(!n);
    CHECK(n.error() == aem::errc::cancelled);
    canceller->join();
    REQUIRE(stream->write_all("abcd", 5s));
    REQUIRE(stream->read_exact(buffer, 5s));
    CHECK(std::string_view(buffer.data(), 4) == "abcd");
    REQUIRE(stream->shutdown(5s));
  });
}
