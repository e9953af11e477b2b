// Socket registrations under control: fan-out of one receive to several registrations sharing
// one buffer, cancelling one of them, and backpressure at the queue bound (the receive pauses,
// no byte is lost or reordered).
#include "support/cores.hpp"
#include "support/event_helpers.hpp"
#include "support/net_helpers.hpp"

#include <aem/capsule.hpp>
#include <aem/cross_core.hpp>
#include <aem/event.hpp>
#include <aem/net.hpp>
#include <aem/net/events.hpp>
#include <aem/runtime.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <mutex>
#include <random>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using aem_test::as_bytes;
using aem_test::text_of;
using aem_test::wait_until;

namespace {

// Shares collects what a SharedEventData handler was given (kept alive, to compare blocks).
struct Shares {
  std::mutex mutex;
  std::vector<aem::SharedEventData> blocks;
  std::string text() {
    std::lock_guard lock(mutex);
    std::string all;
    for (const auto& b : blocks) all += text_of(b);
    return all;
  }
};

}  // namespace

TEST_CASE("socket events: registrations of one stream share one receive and each get every byte") {
  for (unsigned cores : {1u, 2u}) {
    CAPTURE(cores);
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([&] {
      aem_test::TcpPair pair = aem_test::tcp_pair();
      Shares first;
      Shares second;
      std::mutex copy_mutex;
      std::string copied;
      const unsigned home = cores - 1;
      auto ids = aem::submit(home, [&] {
        std::vector<aem::EventId> out;
        out.push_back(*aem::on_data(pair.server, [&](aem::SharedEventData d) {
          std::lock_guard lock(first.mutex);
          first.blocks.push_back(std::move(d));
        }, {.exec = aem::Executor::keepalive}));
        out.push_back(*aem::on_data(pair.server, [&](aem::SharedEventData d) {
          std::lock_guard lock(second.mutex);
          second.blocks.push_back(std::move(d));
        }));
        out.push_back(*aem::on_data(pair.server, [&](aem::EventData d) {
          std::lock_guard lock(copy_mutex);
          copied += text_of(d);
        }, {.exec = aem::Executor::inline_handler}));
        return out;
      });
      REQUIRE(ids);
      REQUIRE(ids->size() == 3);
      for (aem::EventId id : *ids) {
        auto info = aem::ctl(id).info();
        REQUIRE(info);
        CHECK(info->sharing == 3);
        CHECK(info->source == aem::SourceType::data);
      }
      REQUIRE(pair.client.write_all(as_bytes("hello, fan-out")));
      REQUIRE(wait_until([&] {
        std::lock_guard lock(copy_mutex);
        return first.text().size() == 14 && second.text().size() == 14 && copied.size() == 14;
      }));
      CHECK(first.text() == "hello, fan-out");
      CHECK(second.text() == "hello, fan-out");
      CHECK(copied == "hello, fan-out");
      {
        std::lock_guard a(first.mutex);
        std::lock_guard b(second.mutex);
        REQUIRE(first.blocks.size() == second.blocks.size());
        for (std::size_t i = 0; i < first.blocks.size(); ++i) {
          CHECK(first.blocks[i].data() == second.blocks[i].data());  // one block, not copies
          CHECK(first.blocks[i].use_count() == 2);                   // held by the two handlers only
        }
      }
      // Cancelling one keeps the source alive for the others.
      REQUIRE(aem::ctl((*ids)[1]).cancel());
      auto info = aem::ctl((*ids)[0]).info();
      REQUIRE(info);
      CHECK(info->sharing == 2);
      REQUIRE(pair.client.write_all(as_bytes("|more")));
      REQUIRE(wait_until([&] { return first.text().size() == 19; }));
      CHECK(first.text() == "hello, fan-out|more");
      CHECK(second.text() == "hello, fan-out");
      REQUIRE(wait_until([&] {
        std::lock_guard lock(copy_mutex);
        return copied.size() == 19;
      }));
      // The end of the stream ends all of them.
      CHECK(pair.client.close());
      REQUIRE(wait_until([&] { return !aem::ctl((*ids)[0]).info() && !aem::ctl((*ids)[2]).info(); }));
      {
        std::lock_guard a(first.mutex);
        std::lock_guard b(second.mutex);
        first.blocks.clear();
        second.blocks.clear();
      }
    });
  }
}

TEST_CASE("socket events: at the queue bound the receive pauses: every byte arrives, in order") {
  for (unsigned cores : {1u, 2u}) {
    CAPTURE(cores);
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([&] {
      aem_test::TcpPair pair = aem_test::tcp_pair();
      std::string text(512 * 1024, '\0');
      std::mt19937 rng(7);
      for (char& c : text) c = static_cast<char>('a' + rng() % 26);
      std::mutex mutex;
      std::string received;
      const unsigned home = cores - 1;
      auto id = aem::submit(home, [&] {
        return aem::on_data(pair.server, [&](aem::EventData d) {
          std::lock_guard lock(mutex);
          received += text_of(d);
        }, {.exec = aem::Executor::keepalive, .queue_bound = 4});
      });
      REQUIRE(id);
      REQUIRE(*id);
      REQUIRE(aem::ctl(**id).disable());
      // The writer blocks once the socket's buffers are full: the receive is paused.
      auto writer = aem::spawn([&] { return pair.client.write_all(as_bytes(text), 30s); });
      REQUIRE(writer);
      REQUIRE(wait_until([&] {
        auto info = aem::ctl(**id).info();
        return info && info->throttled;
      }));
      auto info = aem::ctl(**id).info();
      REQUIRE(info);
      CHECK(info->state == aem::EventState::disabled);
      CHECK(info->queued >= 4);
      CHECK(info->delivered == 0);
      {
        std::lock_guard lock(mutex);
        CHECK(received.empty());
      }
      REQUIRE(aem::ctl(**id).enable());
      CHECK(writer->join());
      REQUIRE(wait_until([&] {
        std::lock_guard lock(mutex);
        return received.size() == text.size();
      }));
      {
        std::lock_guard lock(mutex);
        CHECK(received == text);
      }
      info = aem::ctl(**id).info();
      REQUIRE(info);
      CHECK(info->lost == 0);
      CHECK(info->state == aem::EventState::active);
      CHECK_FALSE(info->throttled);
      auto stats = aem::submit(home, [] { return aem::this_core::event_stats().throttles; });
      REQUIRE(stats);
      CHECK(*stats >= 1);
      CHECK(aem::ctl(**id).cancel());
    });
  }
}
