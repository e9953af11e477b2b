// StreamSocket::send / flush: detached sends, in order, errors sticky, close and destruction.
// The backend comes from AEM_BACKEND like every other test (run once with AEM_BACKEND=epoll).
#include "support/cores.hpp"
#include "support/net_helpers.hpp"

#include <aem/capsule.hpp>
#include <aem/core_arena.hpp>
#include <aem/net.hpp>
#include <aem/net/events.hpp>
#include <aem/runtime.hpp>

#include <doctest/doctest.h>

#include <cstring>
#include <memory>
#include <sys/socket.h>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

// block returns an arena block holding `bytes`.
aem::EventData block(std::span<const std::byte> bytes) {
  auto data = aem::this_core::allocate_data(bytes.size());
  REQUIRE(data);
  if (!bytes.empty()) std::memcpy(data->data(), bytes.data(), bytes.size());
  return std::move(*data);
}

// read_all reads exactly `size` bytes from `stream`.
std::vector<std::byte> read_all(aem::StreamSocket& stream, std::size_t size) {
  std::vector<std::byte> data(size);
  REQUIRE(stream.read_exact(data, 10s));
  return data;
}

// reset_by_peer makes `stream` abort the connection (SO_LINGER 0: close sends RST).
void reset_by_peer(aem::TcpStream& stream) {
  const linger abort{1, 0};
  REQUIRE(::setsockopt(stream.fd(), SOL_SOCKET, SO_LINGER, &abort, sizeof abort) == 0);
  REQUIRE(stream.close());
}

}  // namespace

TEST_CASE("net send: many blocks of many sizes arrive whole and in order, without suspending the sender") {
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([] {
    aem_test::TcpPair pair = aem_test::tcp_pair();
    aem::TcpStream& client = pair.client;
    aem::TcpStream& server = pair.server;
    const std::vector<std::byte> expected = aem_test::pattern(3 * 1024 * 1024, 7);
    // Sizes from 1 byte to 64 KiB, so gathered sends, partial sends and a backlog all happen:
    // the peer does not read until everything is queued.
    std::size_t at = 0;
    for (std::size_t i = 0; at < expected.size(); ++i) {
      const std::size_t size = std::min<std::size_t>((i * 7919) % 65536 + 1, expected.size() - at);
      REQUIRE(server.send(block(std::span(expected).subspan(at, size))));
      at += size;
    }
    auto reader = aem::spawn([&] { CHECK(read_all(client, expected.size()) == expected); });
    REQUIRE(reader);
    CHECK(server.flush(10s));
    reader->join();
  });
}

TEST_CASE("net send: an empty block sends nothing: an EventData that owns nothing is refused") {
  aem_test::run_with_tcp_pair(1, [](aem::TcpStream& client, aem::TcpStream& server) {
    CHECK(server.send(block({})));
    CHECK(server.send(aem::EventData()).error() == aem::errc::invalid_argument);
    REQUIRE(server.send(block(aem_test::as_bytes("x"))));
    CHECK(server.flush());
    CHECK(read_all(client, 1) == std::vector<std::byte>{std::byte{'x'}});
    CHECK(server.flush());  // nothing queued: at once
  });
}

TEST_CASE("net send: a registration handler echoes with send and returns at once") {
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([] {
    aem_test::TcpPair pair = aem_test::tcp_pair();
    aem::TcpStream& client = pair.client;
    auto server = std::make_shared<aem::TcpStream>(std::move(pair.server));
    auto id = aem::on_data(
        *server, [server](aem::EventData bytes) { CHECK(server->send(std::move(bytes))); },
        {.exec = aem::Executor::keepalive});
    REQUIRE(id);
    for (int round = 0; round < 200; ++round) {
      const std::vector<std::byte> message = aem_test::pattern(64, static_cast<std::uint64_t>(round));
      REQUIRE(client.write_all(message, 10s));
      CHECK(read_all(client, message.size()) == message);
    }
    CHECK(aem::cancel(*id));
  });
}

TEST_CASE("net send: a failed send is sticky: the later send and flush report it") {
  aem_test::run_with_tcp_pair(1, [](aem::TcpStream& client, aem::TcpStream& server) {
    reset_by_peer(client);
    // The first sends may still be taken by the kernel before the reset is seen; the reset
    // makes one of them fail within a few, and from then on every call reports it.
    std::error_code error;
    for (int i = 0; i < 1000 && !error; ++i) {
      if (auto sent = server.send(block(aem_test::as_bytes("after the reset"))); !sent) error = sent.error();
      else if (auto flushed = server.flush(10s); !flushed) error = flushed.error();
    }
    REQUIRE(error);
    CHECK((error == std::errc::connection_reset || error == std::errc::broken_pipe));
    CHECK(server.send(block(aem_test::as_bytes("again"))).error() == error);
    CHECK(server.flush().error() == error);
  });
}

TEST_CASE("net send: close ends a send stuck on a peer that does not read: later calls fail") {
  aem_test::run_with_tcp_pair(1, [](aem::TcpStream& client, aem::TcpStream& server) {
    // More than both socket buffers hold: the send waits for the client, which never reads.
    auto big = aem::this_core::allocate_data(32 * 1024 * 1024);
    REQUIRE(big);
    std::memset(big->data(), 0x5a, big->size());
    REQUIRE(server.send(std::move(*big)));
    std::error_code failed;
    auto flusher = aem::spawn([&] { failed = server.flush(10s).error(); });  // ended by the close
    REQUIRE(flusher);
    aem::this_capsule::yield();
    REQUIRE(server.close());
    flusher->join();
    CHECK(failed == std::errc::broken_pipe);
    // The sticky error comes first; it says more than the closed descriptor would.
    CHECK(server.send(block(aem_test::as_bytes("late"))).error() == failed);
    (void)client;
  });
}

TEST_CASE("net send: destroying a stream with bytes queued still delivers them, then closes") {
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([] {
    aem_test::TcpPair pair = aem_test::tcp_pair();
    aem::TcpStream& client = pair.client;
    aem::TcpStream& server = pair.server;
    const std::vector<std::byte> expected = aem_test::pattern(8 * 1024 * 1024, 3);
    {
      aem::TcpStream doomed = std::move(server);
      REQUIRE(doomed.send(block(expected)));
    }  // destroyed while the peer has read nothing
    CHECK(read_all(client, expected.size()) == expected);
    std::array<std::byte, 1> more{};
    CHECK(client.read(more, 10s).value() == 0);  // then the end of the stream
  });
}

TEST_CASE("net send: outside a core it reports not_in_capsule: on another core invalid_argument") {
  aem::Runtime rt(aem_test::config_for(2));
  rt.run([] {
    aem_test::TcpPair pair = aem_test::tcp_pair();
    aem::TcpStream& client = pair.client;
    aem::TcpStream& server = pair.server;
    REQUIRE(server.send(block(aem_test::as_bytes("home"))));
    const unsigned other = aem::this_core::id() == 0 ? 1 : 0;
    auto elsewhere = aem::spawn(
        [&] {
          auto data = aem::this_core::allocate_data(1);
          REQUIRE(data);
          CHECK(server.send(std::move(*data)).error() == aem::errc::invalid_argument);
          CHECK(server.flush().error() == aem::errc::invalid_argument);
        },
        {.core = other});
    REQUIRE(elsewhere);
    elsewhere->join();
    std::error_code plain;
    std::thread([&] { plain = server.flush().error(); }).join();
    CHECK(plain == aem::errc::not_in_capsule);
    CHECK(server.flush());
    CHECK(aem_test::as_string(read_all(client, 4)) == "home");
  });
}
