#include "support/cores.hpp"
#include "support/net_helpers.hpp"
#include "support/sync_helpers.hpp"

#include <aem/capsule.hpp>
#include <aem/net.hpp>
#include <aem/runtime.hpp>

#include <doctest/doctest.h>

#include <array>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace std::chrono_literals;
using aem_test::as_bytes;
using aem_test::as_string;

TEST_CASE("net tcp: connect, accept, echo across cores: addresses agree") {
  AEM_FOR_EACH_CORE_COUNT(cores) {
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([&] {
      aem::TcpListener listener = aem_test::loopback_listener();
      const aem::SocketAddress address = listener.local_address().value();
      CHECK(address.port() != 0);
      auto server = aem_test::spawn_on(cores - 1, [&] {
        aem::SocketAddress peer;
        auto stream = listener.accept(peer, 10s);
        REQUIRE(stream);
        CHECK(peer == stream->peer_address().value());
        CHECK(aem_test::echo_until_end(*stream).value() == 14);
      });
      auto client = aem::TcpStream::connect(address, 10s);
      REQUIRE(client);
      CHECK(client->peer_address().value() == address);
      CHECK(client->local_address().value().port() != 0);
      REQUIRE(client->write_all(as_bytes("hello, capsule"), 10s));
      std::array<std::byte, 14> reply{};
      REQUIRE(client->read_exact(reply, 10s));
      CHECK(as_string(reply) == "hello, capsule");
      REQUIRE(client->shutdown(aem::Shutdown::write));
      CHECK(aem_test::read_to_end(*client) == std::make_pair(std::string(), std::error_code()));  // server closed
      server.join();
    });
  }
}

TEST_CASE("net tcp: IPv6 loopback works the same way") {
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([] {
    auto listener = aem::TcpListener::bind(aem::SocketAddress::ipv6_loopback(0));
    if (!listener) {
      MESSAGE("no IPv6 loopback here (" << listener.error().message() << "): skipped");
      return;
    }
    auto client = aem::TcpStream::connect(listener->local_address().value(), 10s);
    REQUIRE(client);
    auto server = listener->accept(10s);
    REQUIRE(server);
    CHECK(server->local_address()->family() == aem::AddressFamily::ipv6);
    REQUIRE(client->write_all(as_bytes("six"), 10s));
    std::array<std::byte, 3> buffer{};
    REQUIRE(server->read_exact(buffer, 10s));
    CHECK(as_string(buffer) == "six");
  });
}

TEST_CASE("net tcp: read_exact reports end_of_stream when the peer closes early") {
  aem_test::run_with_tcp_pair(1, [](aem::TcpStream& client, aem::TcpStream& server) {
    REQUIRE(client.write_all(as_bytes("abc"), 10s));
    REQUIRE(client.close());
    std::array<std::byte, 8> buffer{};
    CHECK(server.read_exact(buffer, 10s).error() == aem::errc::end_of_stream);
  });
}

TEST_CASE("net tcp: a peer reset mid-stream is connection_reset, then writes are broken_pipe") {
  aem_test::run_with_tcp_pair(2, [](aem::TcpStream& client, aem::TcpStream& server) {
    auto reader = aem_test::spawn_on(1, [&client] { return aem_test::read_to_end(client); });
    REQUIRE(server.write_all(as_bytes("some data before the reset"), 10s));
    // SO_LINGER with a zero timeout: close sends RST instead of FIN.
    const linger abort_on_close{1, 0};
    REQUIRE(::setsockopt(server.fd(), SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof abort_on_close) == 0);
    REQUIRE(server.close());
    auto [received, error] = reader.join();
    CHECK(std::string_view("some data before the reset").starts_with(received));
    CHECK(error == std::errc::connection_reset);
    // The error is consumed; the connection is dead for writing.
    auto written = client.write(as_bytes("x"), 10s);
    REQUIRE_FALSE(written);
    CHECK((written.error() == std::errc::broken_pipe || written.error() == std::errc::connection_reset));
  });
}

TEST_CASE("net tcp: half-close: the peer reads EOF and can still write back") {
  aem_test::run_with_tcp_pair(2, [](aem::TcpStream& client, aem::TcpStream& server) {
    auto peer = aem_test::spawn_on(1, [&server] {
      auto [request, error] = aem_test::read_to_end(server);
      CHECK_FALSE(error);
      REQUIRE(server.write_all(as_bytes("got " + request), 10s));
      REQUIRE(server.shutdown(aem::Shutdown::write));
    });
    REQUIRE(client.write_all(as_bytes("question"), 10s));
    REQUIRE(client.shutdown(aem::Shutdown::write));
    auto [reply, error] = aem_test::read_to_end(client);
    CHECK_FALSE(error);
    CHECK(reply == "got question");
    peer.join();
  });
}

TEST_CASE("net tcp: with a tiny SO_SNDBUF writes are short and write_all still delivers everything") {
  aem_test::run_with_tcp_pair(2, [](aem::TcpStream& client, aem::TcpStream& server) {
    REQUIRE(client.set_send_buffer(4096));  // (a tiny receive buffer too would stall TCP in persist timeouts)
    const std::vector<std::byte> data = aem_test::pattern(1 << 20, 7);
    auto reader = aem_test::spawn_on(1, [&server, size = data.size()] {
      std::vector<std::byte> received(size);
      std::span<std::byte> rest(received);
      std::array<std::byte, 1000> chunk{};  // small reads: the sender keeps hitting a full buffer
      while (!rest.empty()) {
        auto n = server.read(std::span(chunk).first(std::min(chunk.size(), rest.size())), 30s);
        REQUIRE(n);
        REQUIRE(*n > 0);
        std::memcpy(rest.data(), chunk.data(), *n);
        rest = rest.subspan(*n);
      }
      return received;
    });
    auto first = client.write(data, 30s);
    REQUIRE(first);
    CHECK(*first > 0);
    CHECK(*first < data.size());  // a short write: the send buffer cannot take 1 MiB
    REQUIRE(client.write_all(std::span(data).subspan(*first), 30s));
    CHECK(reader.join() == data);
  });
}

TEST_CASE("net tcp: writev gathers buffers into one stream") {
  aem_test::run_with_tcp_pair(1, [](aem::TcpStream& client, aem::TcpStream& server) {
    const std::string_view parts[] = {"one ", "two ", "three"};
    std::array<iovec, 3> vectors{};
    for (std::size_t i = 0; i < 3; ++i) vectors[i] = {const_cast<char*>(parts[i].data()), parts[i].size()};
    auto n = client.writev(vectors, 10s);
    REQUIRE(n);
    CHECK(*n == 13);
    std::array<std::byte, 13> buffer{};
    REQUIRE(server.read_exact(buffer, 10s));
    CHECK(as_string(buffer) == "one two three");
    std::vector<iovec> too_many(IOV_MAX + 1, iovec{const_cast<char*>(parts[0].data()), 1});
    CHECK(client.writev(too_many).error() == aem::errc::invalid_argument);
  });
}

TEST_CASE("net tcp: deadlines expire on accept, read and write: a timed-out read loses no data") {
  aem::Runtime rt(aem_test::config_for(2));
  rt.run([] {
    aem::TcpListener listener = aem_test::loopback_listener();
    CHECK(listener.accept(5ms).error() == aem::errc::timed_out);

    aem_test::TcpPair pair = aem_test::tcp_pair();
    aem::TcpStream& client = pair.client;
    aem::TcpStream& server = pair.server;
    std::array<std::byte, 8> buffer{};
    CHECK(server.read(buffer, 5ms).error() == aem::errc::timed_out);
    REQUIRE(client.write_all(as_bytes("late"), 10s));
    REQUIRE(server.read_exact(std::span(buffer).first(4), 10s));
    CHECK(as_string(std::span(buffer).first(4)) == "late");

    // Nobody reads at the server: the send and receive buffers fill, then a write blocks.
    REQUIRE(client.set_send_buffer(4096));
    REQUIRE(server.set_receive_buffer(4096));
    const std::vector<std::byte> block(64 * 1024);
    aem::Result<void> written;
    for (int i = 0; i < 1000 && written; ++i) written = client.write_all(block, 20ms);
    CHECK(written.error() == aem::errc::timed_out);
  });
}

TEST_CASE("net tcp: a connect that cannot complete times out (listener backlog full)") {
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([] {
    // A listener that never accepts, with the smallest backlog: once its accept queue is full
    // the kernel drops further SYNs, and those connects hang until their deadline.
    aem::TcpListener listener = aem_test::loopback_listener({.backlog = 0});
    const aem::SocketAddress address = listener.local_address().value();
    std::vector<aem::TcpStream> held;
    std::error_code last;
    for (int i = 0; i < 64; ++i) {
      auto stream = aem::TcpStream::connect(address, 50ms);
      if (!stream) {
        last = stream.error();
        break;
      }
      held.push_back(std::move(*stream));
    }
    if (!last) {
      MESSAGE("64 connects to a backlog-0 listener all completed: this kernel does not drop SYNs; skipped");
      return;
    }
    CHECK(last == aem::errc::timed_out);
    CHECK(!held.empty());
  });
}

TEST_CASE("net tcp: connecting to a closed port is connection_refused") {
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([] {
    aem::SocketAddress address;
    {
      aem::TcpListener listener = aem_test::loopback_listener();
      address = listener.local_address().value();
    }  // closed: nothing listens on the port now
    CHECK(aem::TcpStream::connect(address, 10s).error() == std::errc::connection_refused);
    CHECK(aem::TcpStream::connect(*aem::SocketAddress::unix_path("@x"), 10s).error() == aem::errc::invalid_argument);
  });
}

TEST_CASE("net tcp: blocking calls from a plain thread are not_in_capsule: non-blocking ones work") {
  aem::TcpListener listener = aem_test::loopback_listener();  // bind is not blocking: fine here
  CHECK(listener.accept(1s).error() == aem::errc::not_in_capsule);
  CHECK(aem::TcpStream::connect(listener.local_address().value(), 1s).error() == aem::errc::not_in_capsule);
  // A stream adopted from a plain socketpair: reads and writes need a capsule.
  int fds[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0);
  aem::TcpStream a(fds[0]);
  aem::TcpStream b(fds[1]);
  std::array<std::byte, 4> buffer{};
  CHECK(a.read(buffer).error() == aem::errc::not_in_capsule);
  CHECK(a.write(as_bytes("x")).error() == aem::errc::not_in_capsule);
  CHECK(a.write_all(as_bytes("x")).error() == aem::errc::not_in_capsule);
  CHECK(b.read_exact(buffer).error() == aem::errc::not_in_capsule);
  CHECK(a.shutdown(aem::Shutdown::both));
}

TEST_CASE("net tcp: options, release and use after close") {
  aem_test::run_with_tcp_pair(1, [](aem::TcpStream& client, aem::TcpStream& server) {
    CHECK(client.set_nodelay(true));
    CHECK(client.option(IPPROTO_TCP, TCP_NODELAY).value() != 0);
    CHECK(client.set_keepalive(true, 30s));
    CHECK(client.option(SOL_SOCKET, SO_KEEPALIVE).value() != 0);
    CHECK(client.set_keepalive(false));
    CHECK(client.set_keepalive(true, 0s).error() == aem::errc::invalid_argument);
    CHECK(client.set_send_buffer(1 << 16));
    CHECK(client.set_receive_buffer(1 << 16));

    // release: the stream lets go of the descriptor without closing it.
    const int fd = server.fd();
    CHECK(server.release() == fd);
    CHECK(server.fd() == -1);
    CHECK(::fcntl(fd, F_GETFD) != -1);  // still open
    aem::TcpStream adopted(fd);
    REQUIRE(client.write_all(as_bytes("ok"), 10s));
    std::array<std::byte, 2> buffer{};
    REQUIRE(adopted.read_exact(buffer, 10s));
    CHECK(as_string(buffer) == "ok");

    REQUIRE(adopted.close());
    CHECK(::fcntl(fd, F_GETFD) == -1);  // closed now
    CHECK(adopted.close());             // idempotent
    CHECK(adopted.read(buffer).error() == std::errc::bad_file_descriptor);
    CHECK(adopted.write(as_bytes("x")).error() == std::errc::bad_file_descriptor);
    CHECK(adopted.local_address().error() == std::errc::bad_file_descriptor);
    CHECK(adopted.set_nodelay(true).error() == std::errc::bad_file_descriptor);

    // Moving transfers ownership; the moved-from stream owns nothing.
    aem::TcpStream moved = std::move(client);
    CHECK(client.fd() == -1);
    CHECK(moved.is_open());
  });
}

TEST_CASE("net tcp: two listeners share a port with reuse_port: without it the port is in use") {
  aem::TcpListener first = aem_test::loopback_listener({.reuse_port = true});
  const aem::SocketAddress address = first.local_address().value();
  CHECK(aem::TcpListener::bind(address, {.reuse_port = true}));
  CHECK(aem::TcpListener::bind(address).error() == std::errc::address_in_use);
}

// A read that emptied the socket makes the next one wait for data before it tries (the kernel
// is asked to poll first). That is a hint about timing only: bytes that were already waiting
// and bytes that come later must both be read, on either backend.
TEST_CASE("net tcp: after a read that emptied the socket, the next read gets bytes already there and bytes still to come") {
  aem_test::run_with_tcp_pair(1, [](aem::TcpStream& client, aem::TcpStream& server) {
    std::array<std::byte, 64> buffer{};
    REQUIRE(client.write_all(as_bytes("first"), 10s));
    auto n = server.read(buffer, 10s);
    REQUIRE(n);
    CHECK(as_string(std::span(buffer).first(*n)) == "first");  // short: the socket is empty now

    REQUIRE(client.write_all(as_bytes("second"), 10s));
    // Wait until the bytes are in the server's receive queue before the read starts.
    std::array<std::byte, 6> peek{};
    while (::recv(server.fd(), peek.data(), peek.size(), MSG_PEEK | MSG_DONTWAIT) != 6) aem::this_capsule::yield();
    n = server.read(buffer, 10s);
    REQUIRE(n);
    CHECK(as_string(std::span(buffer).first(*n)) == "second");

    auto writer = aem::spawn([&] {
      aem::this_capsule::sleep_for(20ms);
      return static_cast<bool>(client.write_all(as_bytes("third"), 10s));
    });
    REQUIRE(writer);
    n = server.read(buffer, 10s);
    REQUIRE(n);
    CHECK(as_string(std::span(buffer).first(*n)) == "third");
    CHECK(writer->join());

    // A read that filled its buffer leaves the hint off: the next one tries at once.
    std::string big(64, 'x');
    REQUIRE(client.write_all(as_bytes(big + "tail"), 10s));
    std::string got;
    while (got.size() < big.size() + 4) {
      n = server.read(buffer, 10s);
      REQUIRE(n);
      REQUIRE(*n > 0);
      got += as_string(std::span(buffer).first(*n));
    }
    CHECK(got == big + "tail");
  });
}
