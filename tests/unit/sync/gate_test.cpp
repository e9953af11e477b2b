// aem::Gate: a drain lets the requests in flight finish, ends idle connections at once, cancels
// what is still held at its deadline, refuses new passes and stops accepting; both serving
// styles (a capsule per connection, an on_data registration).
#include "support/cores.hpp"
#include "support/net_helpers.hpp"
#include "support/sync_helpers.hpp"

#include <aem/capsule.hpp>
#include <aem/gate.hpp>
#include <aem/net.hpp>
#include <aem/net/events.hpp>
#include <aem/runtime.hpp>
#include <aem/wait_group.hpp>

#include <doctest/doctest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using aem_test::is;

namespace {

// kLongWait bounds waits that end by themselves, so a broken build fails instead of hanging;
// nothing is asserted about how long they take.
constexpr auto kLongWait = 60s;

// spawn_straggler starts, on the calling core, a capsule that enters `stream` into `gate` (busy:
// a request that never completes, its body never comes) and then runs `reads(buffer)`; it
// returns once the capsule is about to read: on the same core, it has then suspended in its
// first read (the flag is not touched after that).
template <typename F>
aem::Capsule<void> spawn_straggler(aem::Gate& gate, aem::TcpStream& stream, F reads) {
  bool blocked = false;
  auto straggler = aem_test::spawn_on(aem::this_core::id(), [&gate, &stream, &blocked, reads]() mutable {
    auto pass = gate.enter(stream);
    REQUIRE(pass);
    std::array<std::byte, 16> buffer;
    blocked = true;
    reads(buffer);
  });
  aem_test::yield_until([&] { return blocked; });
  return straggler;
}

}  // namespace

TEST_CASE("gate: drain with nothing in flight returns at once, and refuses passes afterwards") {
  AEM_FOR_EACH_CORE_COUNT(cores) {
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([] {
      aem::Gate gate;
      {
        auto pass = gate.enter();
        REQUIRE(pass);
        CHECK(gate.held() == 1);
        auto moved = std::move(*pass);  // a move keeps one pass
        CHECK(gate.held() == 1);
        CHECK(moved.holds());
        CHECK_FALSE(pass->holds());
      }
      CHECK(gate.held() == 0);
      auto report = gate.drain(aem::Deadline::never());  // never: it must not wait at all
      REQUIRE(report);
      CHECK(report->finished == 0);
      CHECK(report->cancelled == 0);
      CHECK(report->remaining == 0);
      CHECK(gate.closed());
      auto refused = gate.enter();
      REQUIRE_FALSE(refused);
      CHECK(is(refused.error(), aem::errc::shutting_down));
    });
  }
}

TEST_CASE("gate: drain lets the requests in flight finish and reply fully") {
  AEM_FOR_EACH_CORE_COUNT(cores) {
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([cores] {
      constexpr int kConnections = 4;
      const std::vector<std::byte> reply = aem_test::pattern(200 * 1024, 7);  // several writes each
      std::vector<aem_test::TcpPair> pairs;
      for (int i = 0; i < kConnections; ++i) pairs.push_back(aem_test::tcp_pair());
      aem::Gate gate;
      aem::WaitGroup release(1);
      std::atomic<int> in_flight{0};
      std::atomic<int> ended_idle{0};
      std::vector<aem::Capsule<void>> servers;
      for (int i = 0; i < kConnections; ++i) {
        servers.push_back(aem_test::spawn_on(static_cast<unsigned>(i) % cores, [&, i] {
          aem::TcpStream& stream = pairs[static_cast<std::size_t>(i)].server;
          auto pass = gate.enter(stream);
          REQUIRE(pass);
          std::array<std::byte, 16> request;
          while (pass->idle()) {
            auto n = stream.read(request);
            if (!n || *n == 0) return;
            pass->busy();
            in_flight.fetch_add(1);
            release.wait();  // the drain starts while the request is in flight
            REQUIRE(stream.write_all(reply));
          }
          ended_idle.fetch_add(1);  // idle() said the gate closed: end the connection
          (void)stream.shutdown(aem::Shutdown::write);
        }));
      }
      for (auto& pair : pairs) REQUIRE(pair.client.write_all(aem_test::as_bytes("get")));
      aem_test::yield_until([&] { return in_flight.load() == kConnections; });

      auto drainer = aem_test::spawn_on(0, [&] {
        auto report = gate.drain(kLongWait);
        REQUIRE(report);
        CHECK(report->finished == kConnections);
        CHECK(report->cancelled == 0);
        CHECK(report->remaining == 0);
      });
      aem_test::yield_until([&] { return gate.closed(); });
      CHECK(gate.held() == kConnections);
      CHECK(is(gate.enter().error(), aem::errc::shutting_down));  // new work is refused
      release.done();
      for (auto& pair : pairs) {
        auto [data, error] = aem_test::read_to_end(pair.client, 64 * 1024, kLongWait);
        CHECK_FALSE(error);
        CHECK(data.size() == reply.size());
        CHECK(aem_test::checksum(aem_test::as_bytes(data)) == aem_test::checksum(reply));
      }
      drainer.join();
      for (auto& server : servers) server.join();
      CHECK(ended_idle.load() == kConnections);
    });
  }
}

TEST_CASE("gate: close ends idle connections at once: their blocked read returns 0") {
  AEM_FOR_EACH_CORE_COUNT(cores) {
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([cores] {
      aem_test::TcpPair pair = aem_test::tcp_pair();
      aem::Gate gate;
      std::atomic<int> answered{0};
      auto server = aem_test::spawn_on(cores - 1, [&] {
        auto pass = gate.enter(pair.server);
        REQUIRE(pass);
        std::array<std::byte, 16> buffer;
        while (pass->idle()) {
          auto n = pair.server.read(buffer);
          if (!n || *n == 0) return;
          pass->busy();
          REQUIRE(pair.server.write_all(std::span(buffer).first(*n)));
          answered.fetch_add(1);
        }
      });
      REQUIRE(pair.client.write_all(aem_test::as_bytes("x")));
      std::array<std::byte, 1> echo;
      REQUIRE(pair.client.read_exact(echo, kLongWait));
      // The connection is idle now (or about to be): the drain does not wait for its deadline.
      auto report = gate.drain(aem::Deadline::never());
      REQUIRE(report);
      CHECK(report->finished == 1);
      CHECK(report->cancelled == 0);
      server.join();
      CHECK(answered.load() == 1);
    });
  }
}

TEST_CASE("gate: a capsule still in its request at the deadline is cancelled and drain says so") {
  AEM_FOR_EACH_CORE_COUNT(cores) {
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([] {
      aem_test::TcpPair pair = aem_test::tcp_pair();
      aem::Gate gate;
      std::error_code seen;
      auto straggler = spawn_straggler(gate, pair.server, [&](std::span<std::byte> buffer) {
        auto n = pair.server.read(buffer);
        REQUIRE_FALSE(n);
        seen = n.error();
      });
      auto report = gate.drain(aem::Clock::now(), kLongWait);  // the deadline has passed already
      REQUIRE(report);
      CHECK(report->finished == 0);
      CHECK(report->cancelled == 1);
      CHECK(report->remaining == 0);
      straggler.join();
      CHECK(is(seen, aem::errc::cancelled));
    });
  }
}

TEST_CASE("gate: a cancelled capsule that reads on is shut down after the grace") {
  AEM_FOR_EACH_CORE_COUNT(cores) {
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([] {
      aem_test::TcpPair pair = aem_test::tcp_pair();
      aem::Gate gate;
      aem::Result<std::size_t> second = aem::errc::invalid_argument;
      auto straggler = spawn_straggler(gate, pair.server, [&](std::span<std::byte> buffer) {
        // With no grace the shutdown follows the cancel at once: this read ends with
        // errc::cancelled or, when the shutdown reaches it first, with 0.
        (void)pair.server.read(buffer);
        second = pair.server.read(buffer, kLongWait);  // ignores that: reads again
      });
      auto report = gate.drain(aem::Clock::now(), aem::Duration::zero());
      REQUIRE(report);
      CHECK(report->cancelled == 1);
      straggler.join();
      // The shutdown ended the second read: the end of the stream (or cancelled), never the
      // read's own deadline.
      CHECK((second ? *second == 0 : !is(second.error(), aem::errc::timed_out)));
      CHECK(gate.held() == 0);
    });
  }
}

TEST_CASE("gate: a pass without a stream cannot be cancelled: drain reports it remaining") {
  aem::Runtime rt(aem_test::config_for(2));
  rt.run([] {
    aem::Gate gate;
    aem::WaitGroup release(1);
    auto holder = aem_test::spawn_on(1, [&] {
      auto pass = gate.enter();
      REQUIRE(pass);
      release.wait();
    });
    aem_test::yield_until([&] { return gate.held() == 1; });
    auto finisher = aem_test::spawn_on(0, [&] {
      auto pass = gate.enter();
      REQUIRE(pass);
    });
    finisher.join();
    auto report = gate.drain(aem::Clock::now(), aem::Duration::zero());
    REQUIRE(report);
    CHECK(report->finished == 0);
    CHECK(report->cancelled == 0);
    CHECK(report->remaining == 1);
    release.done();
    holder.join();
    CHECK(gate.held() == 0);
  });
}

TEST_CASE("gate: close stops an accept loop and an on_accept registration") {
  AEM_FOR_EACH_CORE_COUNT(cores) {
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([cores] {
      aem::TcpListener loop_listener = aem_test::loopback_listener();
      aem::TcpListener registered_listener = aem_test::loopback_listener();
      aem::Gate gate;
      REQUIRE(gate.close_with(loop_listener));
      std::error_code accept_error;
      auto acceptor = aem_test::spawn_on(cores - 1, [&] {
        for (;;) {
          auto stream = loop_listener.accept();
          if (!stream) {
            accept_error = stream.error();
            return;
          }
        }
      });
      std::atomic<int> accepted{0};
      auto id = aem::on_accept(registered_listener, [&](aem::TcpStream) { accepted.fetch_add(1); });
      REQUIRE(id);
      REQUIRE(gate.close_with(*id));
      CHECK(gate.close() == 0);
      acceptor.join();
      CHECK(accept_error);  // errc::cancelled, or bad_file_descriptor if it had not begun yet
      CHECK_FALSE(loop_listener.is_open());
      CHECK(is(aem::cancel(*id).error(), aem::errc::stale_event_id));  // the registration is over
      // Closing again changes nothing; a listener given to a closed gate is closed at once.
      CHECK(gate.close() == 0);
      REQUIRE(gate.close_with(registered_listener));
      CHECK_FALSE(registered_listener.is_open());
      CHECK(accepted.load() == 0);
    });
  }
}

TEST_CASE("gate: registration style: idle connections end at the close, a busy one finishes") {
  AEM_FOR_EACH_CORE_COUNT(cores) {
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([] {
      // Connection is what the on_data handler keeps alive: the pass after the stream.
      struct Connection {
        aem::TcpStream stream;
        aem::Gate::Pass pass;
      };
      aem::Gate gate;
      aem::WaitGroup release(1);
      std::atomic<int> replies{0};
      std::atomic<bool> in_handler{false};
      aem_test::TcpPair idle_pair = aem_test::tcp_pair();
      aem_test::TcpPair busy_pair = aem_test::tcp_pair();
      for (aem::TcpStream* accepted : {&idle_pair.server, &busy_pair.server}) {
        auto connection = std::make_shared<Connection>(Connection{std::move(*accepted), {}});
        auto pass = gate.enter(connection->stream);
        REQUIRE(pass);
        connection->pass = std::move(*pass);
        REQUIRE(connection->pass.idle());  // between requests until bytes come
        auto id = aem::on_data(
            connection->stream,
            [connection, &release, &replies, &in_handler](aem::EventData bytes) {
              connection->pass.busy();
              in_handler.store(true);
              release.wait();  // the request is in flight while the drain starts
              REQUIRE(connection->stream.write_all(bytes.bytes()));
              replies.fetch_add(1);
              // The gate closed: end the connection (the registration ends at the end of input).
              if (!connection->pass.idle()) (void)connection->stream.shutdown(aem::Shutdown::both);
            },
            {.exec = aem::Executor::keepalive});
        REQUIRE(id);
      }
      REQUIRE(busy_pair.client.write_all(aem_test::as_bytes("request")));
      aem_test::yield_until([&] { return in_handler.load(); });
      auto drainer = aem::spawn([&] {
        auto report = gate.drain(kLongWait);
        REQUIRE(report);
        CHECK(report->finished == 2);
        CHECK(report->cancelled == 0);
      });
      REQUIRE(drainer);
      aem_test::yield_until([&] { return gate.closed(); });
      release.done();
      auto [echoed, error] = aem_test::read_to_end(busy_pair.client, 64, kLongWait);
      CHECK_FALSE(error);
      CHECK(echoed == "request");
      drainer->join();
      CHECK(replies.load() == 1);
      CHECK(gate.held() == 0);
    });
  }
}

TEST_CASE("gate: from a plain thread: enter and close work, drain says not_in_capsule") {
  aem::Gate gate;
  auto pass = gate.enter();
  REQUIRE(pass);
  CHECK(gate.close() == 1);
  CHECK_FALSE(pass->idle());
  CHECK(pass->closing());
  auto report = gate.drain(aem::Deadline::never());
  REQUIRE_FALSE(report);
  CHECK(is(report.error(), aem::errc::not_in_capsule));
  pass->leave();
  CHECK(gate.held() == 0);
}
