// aem::Channel<T>: order, senders blocked while full, hand-off to a parked receiver, close,
// move-only values, capacity, cross-core ping-pong, and deadlines racing hand-offs (no value
// lost or duplicated).
#include "support/cores.hpp"
#include "support/sync_helpers.hpp"

#include <aem/capsule.hpp>
#include <aem/channel.hpp>
#include <aem/runtime.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using namespace aem_test;  // is, spawn_on, spin_for, yield_until

TEST_CASE("sync: channel delivers in order and blocks senders while full") {
  AEM_FOR_EACH_CORE_COUNT(cores) {
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([cores] {
      aem::Channel<int> ch(2);
      CHECK(ch.capacity() == 2);
      CHECK(ch.send(1).has_value());
      const int two = 2;
      CHECK(ch.send(two).has_value());  // const T& overload
      CHECK(ch.size() == 2);
      CHECK(is(ch.try_send(3).error(), aem::errc::would_block));
      CHECK(is(ch.send(3, 1ms).error(), aem::errc::timed_out));
      std::atomic<int> sent{0};
      auto sender = spawn_on(cores - 1, [&] {
        for (int v = 3; v <= 6; ++v) {
          REQUIRE(ch.send(std::move(v)).has_value());
          sent.store(v);
        }
      });
      CHECK(sent.load() == 0);  // full: the sender cannot get 3 in before we receive
      std::vector<int> got;
      for (int i = 0; i < 6; ++i) {
        aem::Result<int> v = ch.receive();
        REQUIRE(v);
        got.push_back(*v);
      }
      sender.join();
      CHECK(got == std::vector<int>{1, 2, 3, 4, 5, 6});
      CHECK(ch.size() == 0);
      CHECK(is(ch.try_receive().error(), aem::errc::would_block));
      CHECK(is(ch.receive(1ms).error(), aem::errc::timed_out));
      CHECK(ch.try_send(7).has_value());
      CHECK(*ch.try_receive() == 7);
    });
  }
}

TEST_CASE("sync: channel hands a value straight to a waiting receiver") {
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([] {
    aem::Channel<std::string> ch(1);
    std::atomic<int> waiting{0};
    std::vector<std::string> got;
    auto receiver = spawn_on(0, [&] {
      for (int i = 0; i < 3; ++i) {
        waiting.fetch_add(1);
        got.push_back(ch.receive().value());
      }
    });
    for (int i = 0; i < 3; ++i) {
      yield_until([&] { return waiting.load() == i + 1; });  // the receiver is parked
      // Capacity 1, yet three sends in a row complete: each goes to the parked receiver or
      // the buffer, never blocks.
      CHECK(ch.try_send("v" + std::to_string(i)).has_value());
      CHECK(ch.size() == 0);  // handed over, not buffered
    }
    receiver.join();
    CHECK(got == std::vector<std::string>{"v0", "v1", "v2"});
  });
}

TEST_CASE("sync: channel close drains the buffer, then reports channel_closed") {
  AEM_FOR_EACH_CORE_COUNT(cores) {
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([cores] {
      {
        aem::Channel<int> ch(4);
        CHECK(ch.send(1).has_value());
        CHECK(ch.send(2).has_value());
        CHECK_FALSE(ch.closed());
        ch.close();
        ch.close();  // idempotent
        CHECK(ch.closed());
        CHECK(is(ch.send(3).error(), aem::errc::channel_closed));
        CHECK(is(ch.try_send(3).error(), aem::errc::channel_closed));
        CHECK(*ch.receive() == 1);
        CHECK(*ch.try_receive() == 2);
        CHECK(is(ch.receive().error(), aem::errc::channel_closed));
        CHECK(is(ch.try_receive().error(), aem::errc::channel_closed));
      }
      {
        // Blocked receivers are woken with channel_closed.
        aem::Channel<int> ch(1);
        std::atomic<int> started{0};
        std::vector<aem::Capsule<void>> receivers;
        for (unsigned i = 0; i < 6; ++i) {
          receivers.push_back(spawn_on(i % cores, [&] {
            started.fetch_add(1);
            CHECK(is(ch.receive().error(), aem::errc::channel_closed));
          }));
        }
        yield_until([&] { return started.load() == 6; });
        aem::this_capsule::yield();
        ch.close();
        for (auto& r : receivers) r.join();
      }
      {
        // Blocked senders are woken with channel_closed; what was buffered stays receivable.
        aem::Channel<int> ch(1);
        CHECK(ch.send(100).has_value());
        std::atomic<int> started{0};
        std::atomic<int> closed_errors{0};
        std::vector<aem::Capsule<void>> senders;
        for (unsigned i = 0; i < 6; ++i) {
          senders.push_back(spawn_on(i % cores, [&, i] {
            started.fetch_add(1);
            int v = static_cast<int>(i);
            aem::Result<void> r = ch.send(std::move(v));
            CHECK(is(r.error(), aem::errc::channel_closed));
            if (!r) closed_errors.fetch_add(1);
          }));
        }
        yield_until([&] { return started.load() == 6; });
        aem::this_capsule::yield();
        ch.close();
        for (auto& s : senders) s.join();
        CHECK(closed_errors.load() == 6);
        CHECK(*ch.receive() == 100);
        CHECK(is(ch.receive().error(), aem::errc::channel_closed));
      }
    });
  }
}

TEST_CASE("sync: channel of a move-only type: failed sends leave the value alone") {
  AEM_FOR_EACH_CORE_COUNT(cores) {
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([cores] {
      aem::Channel<std::unique_ptr<int>> ch(2);
      auto p = std::make_unique<int>(1);
      CHECK(ch.send(std::move(p)).has_value());
      CHECK(p == nullptr);
      CHECK(ch.try_send(std::make_unique<int>(2)).has_value());
      auto q = std::make_unique<int>(3);
      CHECK(is(ch.try_send(std::move(q)).error(), aem::errc::would_block));
      REQUIRE(q != nullptr);
      CHECK(is(ch.send(std::move(q), 1ms).error(), aem::errc::timed_out));
      REQUIRE(q != nullptr);
      auto consumer = spawn_on(cores - 1, [&] {
        int sum = 0;
        for (int i = 0; i < 3; ++i) sum += **ch.receive();
        return sum;
      });
      CHECK(ch.send(std::move(q)).has_value());
      CHECK(consumer.join() == 6);
      // Values left in a channel are destroyed with it.
      CHECK(ch.send(std::make_unique<int>(4)).has_value());
    });
  }
}

TEST_CASE("sync: channel capacity 0 is rejected") {
  CHECK_THROWS_AS(aem::Channel<int>(0), std::invalid_argument);
  aem::Channel<int> ch(1);  // try_* from a plain thread
  CHECK(ch.try_send(5).has_value());
  CHECK(*ch.try_receive() == 5);
}

TEST_CASE("sync: cross-core ping-pong through two channels") {
  AEM_FOR_EACH_CORE_COUNT(cores) {
    aem::Runtime rt(aem_test::config_for(cores));
    static constexpr int kRounds = 2000;
    rt.run([cores] {
      aem::Channel<int> ping(1);
      aem::Channel<int> pong(1);
      auto echo = spawn_on(cores - 1, [&] {
        while (auto v = ping.receive()) REQUIRE(pong.send(*v + 1).has_value());
      });
      int v = 0;
      for (int i = 0; i < kRounds; ++i) {
        REQUIRE(ping.send(std::move(v)).has_value());
        v = pong.receive().value();
      }
      ping.close();
      echo.join();
      CHECK(v == kRounds);
    });
  }
}

// ---- deadlines racing hand-offs ------------------------------------------------------------

TEST_CASE("sync: channel timeouts racing hand-offs never lose or duplicate a value") {
  AEM_FOR_EACH_CORE_COUNT(cores) {
    aem::Runtime rt(aem_test::config_for(cores));
    constexpr int kProducers = 3;
    constexpr int kPerProducer = 1500;
    constexpr int kConsumers = 3;
    aem::Channel<int> ch(2);
    std::vector<std::atomic<int>> seen(kProducers * kPerProducer);
    std::atomic<long> sent_sum{0};
    std::atomic<long> received_sum{0};
    std::atomic<long> sent_count{0};
    std::atomic<long> received_count{0};
    std::atomic<long> timeouts{0};
    rt.run([&] {
      std::vector<aem::Capsule<void>> producers;
      std::vector<aem::Capsule<void>> consumers;
      for (int p = 0; p < kProducers; ++p) {
        producers.push_back(spawn_on(static_cast<unsigned>(p + 1) % cores, [&, p] {
          std::mt19937 rng(static_cast<unsigned>(p) + 7);
          for (int i = 0; i < kPerProducer; ++i) {
            int v = p * kPerProducer + i;
            // A timed-out send leaves the value: some are retried, some dropped.
            aem::Result<void> r = ch.send(std::move(v), std::chrono::microseconds(rng() % 100));
            if (!r && rng() % 2 == 0) r = ch.send(std::move(v));
            if (r) {
              sent_sum.fetch_add(p * kPerProducer + i);
              sent_count.fetch_add(1);
            } else {
              timeouts.fetch_add(1);
            }
            if (rng() % 4 == 0) spin_for(static_cast<std::int64_t>(rng() % 50'000));
          }
        }));
      }
      for (int c = 0; c < kConsumers; ++c) {
        consumers.push_back(spawn_on(static_cast<unsigned>(c) % cores, [&, c] {
          std::mt19937 rng(static_cast<unsigned>(c) + 100);
          for (;;) {
            aem::Result<int> r = ch.receive(std::chrono::microseconds(rng() % 100));
            if (r) {
              seen[static_cast<std::size_t>(*r)].fetch_add(1);
              received_sum.fetch_add(*r);
              received_count.fetch_add(1);
            } else if (is(r.error(), aem::errc::channel_closed)) {
              return;
            } else {
              CHECK(is(r.error(), aem::errc::timed_out));
            }
            if (rng() % 4 == 0) spin_for(static_cast<std::int64_t>(rng() % 50'000));
          }
        }));
      }
      for (auto& p : producers) p.join();
      ch.close();
      for (auto& c : consumers) c.join();
    });
    CHECK(received_count.load() == sent_count.load());
    CHECK(received_sum.load() == sent_sum.load());
    CHECK(sent_count.load() + timeouts.load() == kProducers * kPerProducer);
    CHECK(std::all_of(seen.begin(), seen.end(), [](const std::atomic<int>& n) { return n.load() <= 1; }));
  }
}
