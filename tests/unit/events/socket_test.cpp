// AEM-style socket registrations: on_accept, on_data, on_close, on_state.
#include "support/child_process.hpp"
#include "support/cores.hpp"
#include "support/fd_shortage.hpp"
#include "support/net_helpers.hpp"

#include <aem/capsule.hpp>
#include <aem/core_arena.hpp>
#include <aem/net.hpp>
#include <aem/net/events.hpp>
#include <aem/runtime.hpp>
#include <aem/timer.hpp>
#include <aem/wait_group.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <deque>
#include <fcntl.h>
#include <memory>
#include <netinet/in.h>
#include <random>
#include <string>
#include <sys/resource.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;
using aem_test::as_bytes;
using aem_test::as_string;

namespace {

std::string random_text(std::size_t size, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(size, '\0');
  for (char& c : s) c = static_cast<char>('a' + rng() % 26);
  return s;
}

// serve_echo registers an echo service on `listener`: each connection gets an on_data
// registration with `exec`, whose handler owns the stream.
aem::Result<aem::EventId> serve_echo(aem::TcpListener& listener, aem::Executor exec) {
  return aem::on_accept(listener, [exec](aem::TcpStream accepted) {
    auto stream = std::make_shared<aem::TcpStream>(std::move(accepted));
    auto id = aem::on_data(*stream, [stream](aem::EventData bytes) { (void)stream->write_all(bytes.bytes()); },
                           {.exec = exec});
    REQUIRE(id);
  });
}

}  // namespace

TEST_CASE("socket events: an echo service of registrations returns every byte, in order, coalescing or not") {
  // {keepalive, off}, {fresh capsule, off}, {keepalive, coalescing}, {fresh capsule, coalescing}
  for (int variant = 0; variant < 4; ++variant) {
    const aem::Executor exec = variant % 2 == 0 ? aem::Executor::keepalive : aem::Executor::fresh_capsule;
    const auto coalesce = variant < 2 ? 0us : 200us;
    CAPTURE(static_cast<int>(exec));
    CAPTURE(coalesce.count());
    AEM_FOR_EACH_CORE_COUNT(cores) {
      aem::Config config = aem_test::config_for(cores);
      config.coalesce_window = coalesce;
      aem::Runtime rt(config);
      rt.run([&] {
        aem::TcpListener listener = aem_test::loopback_listener();
        auto address = listener.local_address();
        REQUIRE(address);
        auto accepting = serve_echo(listener, exec);
        REQUIRE(accepting);
        constexpr int kClients = 24;
        std::atomic<int> intact{0};
        aem::WaitGroup done;
        for (int c = 0; c < kClients; ++c) {
          done.add(1);
          auto client = aem::spawn(
              [&, c] {
                const std::string text = random_text(20'000 + 997 * static_cast<std::size_t>(c), static_cast<std::uint32_t>(c));
                auto stream = aem::TcpStream::connect(*address, 10s);
                if (stream) {
                  // Write in uneven pieces, each echoed before the next: with fresh capsules
                  // that keeps one activation at a time per connection, so order is defined.
                  std::string echoed;
                  std::vector<std::byte> buffer(4096);
                  for (std::size_t at = 0; at < text.size();) {
                    const std::size_t piece = std::min<std::size_t>(text.size() - at, 1 + (at * 7919) % 3000);
                    if (!stream->write_all(as_bytes(std::string_view(text).substr(at, piece)), 10s)) break;
                    at += piece;
                    while (echoed.size() < at) {
                      auto n = stream->read(buffer, 10s);
                      if (!n || *n == 0) break;
                      echoed += as_string(std::span(buffer).first(*n));
                    }
                    if (echoed.size() < at) break;
                  }
                  if (echoed == text) intact.fetch_add(1);
                }
                done.done();
              },
              {.core = static_cast<unsigned>(c) % cores});
          REQUIRE(client);
          client->detach();
        }
        done.wait();
        CHECK(intact.load() == kClients);
        CHECK(aem::cancel(*accepting));
        CHECK(aem::cancel(*accepting).error() == aem::errc::stale_event_id);
      });
    }
  }
}

TEST_CASE("socket events: on_close reports an orderly close and a reset, then ends") {
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([] {
    for (bool reset : {false, true}) {
      CAPTURE(reset);
      aem_test::TcpPair pair = aem_test::tcp_pair();
      std::error_code seen = make_error_code(std::errc::interrupted);  // a value on_close never reports
      int calls = 0;
      auto id = aem::on_close(pair.server, [&](std::error_code error) {
        seen = error;
        ++calls;
      });
      REQUIRE(id);
      aem::this_capsule::sleep_for(1ms);
      CHECK(calls == 0);  // nothing happened yet
      if (reset) {
        linger hard{1, 0};  // close with RST
        REQUIRE(::setsockopt(pair.client.fd(), SOL_SOCKET, SO_LINGER, &hard, sizeof hard) == 0);
      }
      REQUIRE(pair.client.close());
      for (int i = 0; i < 10'000 && calls == 0; ++i) aem::this_capsule::sleep_for(100us);
      CHECK(calls == 1);
      if (reset) CHECK(seen == std::errc::connection_reset);
      else CHECK_FALSE(seen);
      // One activation, then the registration is over.
      CHECK(aem::cancel(*id).error() == aem::errc::stale_event_id);
    }
  });
}

TEST_CASE("socket events: on_state reports writable and readable, and ends at hang-up") {
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([] {
    aem_test::TcpPair pair = aem_test::tcp_pair();
    std::vector<aem::SocketState> states;
    auto id = aem::on_state(pair.server, POLLIN | POLLRDHUP, [&](aem::SocketState s) { states.push_back(s); },
                            {.exec = aem::Executor::keepalive});
    REQUIRE(id);
    aem::this_capsule::sleep_for(1ms);
    CHECK(states.empty());  // not readable yet
    REQUIRE(pair.client.write_all(as_bytes("ping")));
    for (int i = 0; i < 10'000 && states.empty(); ++i) aem::this_capsule::sleep_for(100us);
    REQUIRE_FALSE(states.empty());
    CHECK(states.front().readable());
    CHECK_FALSE(states.front().peer_closed());

    int writable_seen = 0;
    auto writable = aem::on_state(pair.client, POLLOUT, [&](aem::SocketState s) { writable_seen += s.writable(); });
    REQUIRE(writable);
    for (int i = 0; i < 10'000 && writable_seen == 0; ++i) aem::this_capsule::sleep_for(100us);
    CHECK(writable_seen > 0);
    CHECK(aem::cancel(*writable));

    REQUIRE(pair.client.close());
    for (int i = 0; i < 10'000 && !states.back().peer_closed(); ++i) aem::this_capsule::sleep_for(100us);
    CHECK(states.back().peer_closed());
  });
}

TEST_CASE("socket events: when receive buffers run out, receiving pauses and nothing is lost") {
  aem::Config config = aem_test::config_for(1);
  config.recv_buffers = 4;
  config.recv_buffer_size = 256;
  config.arena.capacity = 4096;  // room for the ring and a few held blocks only
  config.arena.min_block = 64;
  config.arena.on_exhaustion = aem::ExhaustionPolicy::fail;
  aem::Runtime rt(config);
  rt.run([] {
    aem_test::TcpPair pair = aem_test::tcp_pair();
    std::string received;
    std::deque<aem::EventData> held;  // a slow consumer: keeps blocks, so the arena fills up
    auto id = aem::on_data(pair.server, [&](aem::EventData bytes) {
      received += as_string(bytes.bytes());
      held.push_back(std::move(bytes));
      if (held.size() >= 16) {
        aem::this_capsule::sleep_for(200us);
        held.clear();
      }
    }, {.exec = aem::Executor::keepalive});
    REQUIRE(id);
    const std::string text = random_text(256 * 1024, 7);
    auto writer = aem::spawn([&] {
      for (std::size_t at = 0; at < text.size(); at += 256) {
        if (!pair.client.write_all(as_bytes(std::string_view(text).substr(at, 256)))) return;
      }
      (void)pair.client.shutdown(aem::Shutdown::write);
    });
    REQUIRE(writer);
    writer->join();
    for (int i = 0; i < 100'000 && received.size() < text.size(); ++i) aem::this_capsule::sleep_for(100us);
    CHECK(received.size() == text.size());
    CHECK(received == text);
    const aem::SocketEventStats stats = aem::this_core::socket_event_stats();
    MESSAGE("receive starvations: " << stats.receive_starvations);
    CHECK(stats.receive_starvations > 0);
    CHECK(stats.receive_buffers == 4);
    held.clear();
  });
}

// EMFILE: the accept loop backs off instead of spinning, tells the application, and serves
// every connection once descriptors are free again. In a child: it lowers RLIMIT_NOFILE.
TEST_CASE("socket events: on_accept backs off on EMFILE and keeps serving") {
  const auto result = aem_test::run_in_child([] {
    aem::Runtime rt(aem_test::config_for(1));
    return rt.run([]() -> int {
      aem::TcpListener listener = aem_test::loopback_listener();
      auto address = listener.local_address();
      if (!address) return 10;
      constexpr int kClients = 32;
      std::vector<aem::TcpStream> held;
      int errors = 0;
      int served = 0;
      int running = 0;  // handlers started and not finished: the locals above outlive them all
      // The clients are made before the limit drops; they connect after it, when the limit
      // leaves the server room for a few accepted ones.
      aem_test::OneByteClients clients(*address, kClients);
      bool lowered = false;
      const rlimit original = aem_test::leave_free_descriptors(3, lowered);
      if (!lowered) return 12;
      // Registered under the lowered limit: io_uring reads the limit when an accept is submitted.
      auto id = aem::on_accept(
          listener,
          [&](aem::TcpStream stream) {
            ++running;
            std::byte one[1];
            if (stream.read_exact(one, 10s) && stream.write_all(one, 10s)) ++served;
            held.push_back(std::move(stream));  // keeps its descriptor until an EMFILE frees them
            --running;
          },
          {.on_error = [&](std::error_code error) {
            // Compared without a virtual call: UBSan's vptr check probes memory through a pipe,
            // which fails (and reports a false error) while descriptors are exhausted.
            if (error.value() == EMFILE && &error.category() == &std::generic_category()) ++errors;
            held.clear();
          }});
      if (!id) return 11;
      clients.go();
      // The client thread ends when every connection was echoed or timed out.
      const int echoed = clients.wait_finished();
      ::setrlimit(RLIMIT_NOFILE, &original);
      const aem::SocketEventStats stats = aem::this_core::socket_event_stats();
      std::printf("served=%d echoed=%d errors=%d backoffs=%llu\n", served, echoed, errors,
                  static_cast<unsigned long long>(stats.accept_backoffs));
      std::fflush(stdout);
      (void)aem::cancel(*id);
      // cancel lets handlers that run already finish: they still use the locals.
      while (running > 0) aem::this_capsule::sleep_for(1ms);
      if (echoed != kClients) return 1;
      if (errors == 0 || stats.accept_backoffs == 0) return 2;
      return 0;
    });
  });
  INFO(result.output);
  CHECK(result.exit_code == 0);
}
