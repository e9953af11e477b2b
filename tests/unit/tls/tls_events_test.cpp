// tls_events_test.cpp — on_data over a TLS stream (registration style), and many connections.
#include "unit/tls/tls_helpers.hpp"

#include <aem/net/events.hpp>
#include <aem/tls/events.hpp>
#include <aem/wait_group.hpp>

#include <random>
#include <sys/resource.h>

using namespace std::chrono_literals;

TEST_CASE("tls: on_data delivers 1 MiB of random-sized writes decrypted, in order, and the handler echoes it") {
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([] {
    tls_test::TlsListener server_side;
    std::atomic<int> activations{0};
    std::shared_ptr<aem::tls::Stream> held;
    auto server = aem::spawn([&] {
      // The handshake comes before the registration: its first activation is data.
      auto shared = std::make_shared<aem::tls::Stream>(server_side.accept());
      held = shared;
      auto id = aem::tls::on_data(
          shared,
          [shared_weak = std::weak_ptr<aem::tls::Stream>(shared), &activations](aem::EventData plain) {
            activations.fetch_add(1);
            if (auto s = shared_weak.lock()) (void)s->write_all(plain.bytes(), 10s);
          },
          {.exec = aem::Executor::keepalive});
      REQUIRE_MESSAGE(id, id.error().message());
    });
    REQUIRE(server);
    auto stream = aem::tls::Stream::connect(tls_test::client_context(), "localhost", server_side.port, 10s);
    REQUIRE(stream);
    server->join();
    CHECK(stream->server_name() == "localhost");
    std::vector<std::byte> sent(1 << 20);
    std::mt19937 random(11);
    for (auto& b : sent) b = static_cast<std::byte>(random());
    std::vector<std::byte> received(sent.size());
    auto reader = aem::spawn([&] {
      auto done = stream->read_exact(received, 30s);
      CHECK_MESSAGE(done, done.error().message());
    });
    REQUIRE(reader);
    std::size_t offset = 0;
    while (offset < sent.size()) {
      const std::size_t size = std::min<std::size_t>(1 + random() % 40000, sent.size() - offset);
      REQUIRE(stream->write_all(std::span(sent).subspan(offset, size), 30s));
      offset += size;
    }
    reader->join();
    CHECK(received == sent);
    CHECK(activations > 0);
    // The client's close_notify ends the registration; the server stream saw it.
    REQUIRE(stream->shutdown(5s));
    for (int i = 0; i < 500 && !held->close_notify_received(); ++i) aem::this_capsule::sleep_for(10ms);
    CHECK(held->close_notify_received());
    held.reset();
  });
}

TEST_CASE("tls: on_data refuses a stream whose handshake has not run") {
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([] {
    auto pair = aem_test::tcp_pair();
    auto stream = aem::tls::Stream::server(tls_test::server_context(), std::move(pair.server));
    REQUIRE(stream);
    auto shared = std::make_shared<aem::tls::Stream>(std::move(*stream));
    auto id = aem::tls::on_data(shared, [](aem::EventData) {});
    REQUIRE(!id);
    CHECK(id.error() == aem::tls::tls_errc::handshake_required);
  });
}

TEST_CASE("tls: 1000 concurrent TLS connections each echo") {
  static constexpr int kConnections = 1000;
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  const rlim_t needed = 2 * kConnections + 200;
  if (limit.rlim_cur < needed) {
    rlimit raised = limit;
    raised.rlim_cur = std::min<rlim_t>(limit.rlim_max, needed);
    ::setrlimit(RLIMIT_NOFILE, &raised);
    ::getrlimit(RLIMIT_NOFILE, &raised);
    if (raised.rlim_cur < needed) {
      MESSAGE("RLIMIT_NOFILE's hard limit " << limit.rlim_max << " is below " << needed << ": skipped");
      return;
    }
  }
  auto config = aem_test::config_for(2);
  config.capsules_per_core = 256;
  aem::Runtime rt(config);
  rt.run([] {
    tls_test::EchoServer echo;
    auto acceptor = echo.start(tls_test::server_context(), kConnections);
    auto client = tls_test::client_context();
    std::atomic<int> echoed{0};
    std::atomic<int> failed{0};
    std::string first_error;
    aem::WaitGroup all(kConnections);
    std::vector<std::shared_ptr<aem::tls::Stream>> open;  // all held open at once
    open.resize(kConnections);
    for (int i = 0; i < kConnections; ++i) {
      auto connection = aem::spawn(
          [&, i] {
            auto stream = aem::tls::Stream::connect(client, "localhost", echo.port(), 60s);
            if (stream) {
              auto shared = std::make_shared<aem::tls::Stream>(std::move(*stream));
              const std::string message = "connection " + std::to_string(i);
              std::string back(message.size(), '\0');
              if (shared->write_all(message, 60s) && shared->read_exact(std::span(back), 60s) && back == message) {
                echoed.fetch_add(1);
                open[static_cast<std::size_t>(i)] = std::move(shared);
              } else {
                failed.fetch_add(1);
              }
            } else if (failed.fetch_add(1) == 0) {
              first_error = stream.error().message();
            }
            all.done();
          },
          {.core = static_cast<unsigned>(i % 2)});
      REQUIRE(connection);
      connection->detach();
    }
    all.wait();
    INFO("first error: " << first_error);
    CHECK(echoed == kConnections);
    CHECK(failed == 0);
    CHECK(echo.log.handshakes == kConnections);
    // Close them from their own cores (a stream is destroyed where it was used).
    aem::WaitGroup closed(kConnections);
    for (int i = 0; i < kConnections; ++i) {
      auto closer = aem::spawn(
          [&, i] {
            if (auto& s = open[static_cast<std::size_t>(i)]) (void)s->shutdown(10s);
            open[static_cast<std::size_t>(i)].reset();
            closed.done();
          },
          {.core = static_cast<unsigned>(i % 2)});
      REQUIRE(closer);
      closer->detach();
    }
    closed.wait();
    acceptor.join();
  });
}
