#include "support/cores.hpp"
#include "support/net_helpers.hpp"
#include "support/sync_helpers.hpp"

#include <aem/capsule.hpp>
#include <aem/net.hpp>
#include <aem/runtime.hpp>

#include <doctest/doctest.h>

#include <array>
#include <atomic>
#include <fcntl.h>
#include <thread>

using namespace std::chrono_literals;
using aem_test::as_bytes;
using aem_test::as_string;

namespace {

// until_done calls `poke` until `done` is set. A cancel only reaches calls already in flight,
// and the other capsule may not have entered its call yet: poking again until it returns keeps
// the test free of timing assumptions.
template <typename F>
void until_done(const std::atomic<bool>& done, F&& poke) {
  while (!done.load()) {
    poke();
    aem::this_capsule::sleep_for(1ms);
  }
}

}  // namespace

TEST_CASE("net cancel: cancel() from another capsule ends a blocked read: the stream stays usable") {
  AEM_FOR_EACH_CORE_COUNT(cores) {
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([&] {
      aem_test::TcpPair pair = aem_test::tcp_pair();
      std::atomic<bool> done{false};
      auto reader = aem_test::spawn_on(cores - 1, [&] {
        std::array<std::byte, 16> buffer{};
        auto n = pair.server.read(buffer);  // no deadline: only the cancel ends it
        done = true;
        return n.error();
      });
      until_done(done, [&] { pair.server.cancel(); });
      CHECK(reader.join() == aem::errc::cancelled);
      // The cancelled read consumed nothing, and the stream works as before.
      REQUIRE(pair.client.write_all(as_bytes("after"), 10s));
      std::array<std::byte, 5> buffer{};
      REQUIRE(pair.server.read_exact(buffer, 10s));
      CHECK(as_string(buffer) == "after");
    });
  }
}

TEST_CASE("net cancel: cancel() from a plain thread reaches a capsule blocked in recv_from") {
  aem::Runtime rt(aem_test::config_for(2));
  rt.run([] {
    auto socket = aem::UdpSocket::bind(aem::SocketAddress::ipv4_loopback(0));
    REQUIRE(socket);
    std::atomic<bool> done{false};
    std::thread canceller([&] {
      while (!done.load()) {
        socket->cancel();
        std::this_thread::sleep_for(1ms);
      }
    });
    std::array<std::byte, 16> buffer{};
    auto received = socket->recv_from(buffer);
    done = true;
    canceller.join();
    CHECK(received.error() == aem::errc::cancelled);
  });
}

// A close() that comes before the other capsule has entered its call makes that call fail
// with bad_file_descriptor instead of being cancelled. The close tests retry, waiting a little
// longer each time, until the call was caught in flight at least once — and accept either
// outcome on the way, so no attempt depends on timing.
constexpr int kCloseAttempts = 20;

TEST_CASE("net cancel: close() from another capsule ends a blocked accept and closes the listener") {
  aem::Runtime rt(aem_test::config_for(2));
  rt.run([] {
    bool cancelled_in_flight = false;
    for (int attempt = 1; attempt <= kCloseAttempts && !cancelled_in_flight; ++attempt) {
      aem::TcpListener listener = aem_test::loopback_listener();
      const int fd = listener.fd();
      std::atomic<bool> started{false};
      auto acceptor = aem_test::spawn_on(1, [&] {
        started = true;
        return listener.accept().error();
      });
      while (!started.load()) aem::this_capsule::sleep_for(100us);
      aem::this_capsule::sleep_for(attempt * 1ms);
      CHECK(listener.close());
      const std::error_code error = acceptor.join();
      CHECK((error == aem::errc::cancelled || error == std::errc::bad_file_descriptor));
      cancelled_in_flight = error == aem::errc::cancelled;
      CHECK(listener.fd() == -1);
      CHECK(::fcntl(fd, F_GETFD) == -1);  // the last call to let go closed it
      CHECK(listener.accept(1s).error() == std::errc::bad_file_descriptor);
    }
    CHECK(cancelled_in_flight);
  });
}

TEST_CASE("net cancel: close() under a blocked reader and writer ends both") {
  aem::Runtime rt(aem_test::config_for(2));
  rt.run([] {
    int both_in_flight = 0;
    for (int attempt = 1; attempt <= kCloseAttempts && both_in_flight == 0; ++attempt) {
      aem_test::TcpPair pair = aem_test::tcp_pair();
      REQUIRE(pair.client.set_send_buffer(4096));
      REQUIRE(pair.server.set_receive_buffer(4096));
      std::atomic<int> started{0};
      auto reader = aem_test::spawn_on(1, [&] {
        std::array<std::byte, 16> buffer{};
        started.fetch_add(1);
        return pair.client.read(buffer).error();
      });
      auto writer = aem_test::spawn_on(0, [&] {
        const std::vector<std::byte> block(1 << 20);  // far more than the buffers hold
        started.fetch_add(1);
        return pair.client.write_all(block).error();
      });
      while (started.load() < 2) aem::this_capsule::sleep_for(100us);
      aem::this_capsule::sleep_for(attempt * 1ms);
      CHECK(pair.client.close());
      const std::error_code read_error = reader.join();
      const std::error_code write_error = writer.join();
      CHECK((read_error == aem::errc::cancelled || read_error == std::errc::bad_file_descriptor));
      CHECK((write_error == aem::errc::cancelled || write_error == std::errc::bad_file_descriptor));
      CHECK(pair.client.fd() == -1);
      both_in_flight = read_error == aem::errc::cancelled && write_error == aem::errc::cancelled;
    }
    CHECK(both_in_flight);
  });
}

TEST_CASE("net cancel: shutdown(read) wakes a blocked reader with end of stream") {
  aem::Runtime rt(aem_test::config_for(2));
  rt.run([] {
    aem_test::TcpPair pair = aem_test::tcp_pair();
    std::atomic<bool> done{false};
    auto reader = aem_test::spawn_on(1, [&] {
      std::array<std::byte, 16> buffer{};
      auto n = pair.server.read(buffer);
      done = true;
      return n;
    });
    until_done(done, [&] { CHECK(pair.server.shutdown(aem::Shutdown::read)); });
    auto n = reader.join();
    REQUIRE(n);
    CHECK(*n == 0);
  });
}
