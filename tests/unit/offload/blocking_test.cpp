// aem::blocking: a call runs on the runtime's pool of threads while the core runs its other
// capsules; values, exceptions and move-only results come back; deadlines remove queued calls
// and drop running ones' results (nothing runs twice, nothing leaks); the queue is bounded and
// ordered by priority; idle threads retire; a stop drops queued calls and leaves running ones.
// Every case runs on the backend AEM_BACKEND selects (run the binary under both).
#include "support/cores.hpp"
#include "support/sync_helpers.hpp"

#include <aem/blocking.hpp>
#include <aem/capsule.hpp>
#include <aem/event.hpp>
#include <aem/metrics.hpp>
#include <aem/runtime.hpp>
#include <aem/timer.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using namespace aem_test;  // is, spawn_on, yield_until

namespace {

// Gate holds pool threads until the test opens it (or a generous bound passes, so a broken
// runtime fails the test instead of hanging it).
struct Gate {
  std::atomic<bool> open{false};
  void wait() const {
    const auto give_up = std::chrono::steady_clock::now() + 20s;
    while (!open.load() && std::chrono::steady_clock::now() < give_up) std::this_thread::sleep_for(100us);
  }
};

// Counted is a result type that counts its live instances.
struct Counted {
  static inline std::atomic<int> live{0};
  int value = 0;
  explicit Counted(int v) : value(v) { live.fetch_add(1); }
  Counted(Counted&& other) noexcept : value(other.value) { live.fetch_add(1); }
  Counted(const Counted&) = delete;
  ~Counted() { live.fetch_sub(1); }
};

aem::Config pool_config(unsigned cores, unsigned threads) {
  aem::Config config = config_for(cores);
  config.blocking_threads = threads;
  return config;
}

aem::CoreMetrics core_metrics() {
  aem::Result<aem::CoreMetrics> m = aem::this_core::metrics();
  REQUIRE(m);
  return *m;
}

// wait_for_yielding yields until `done()` or a generous bound.
template <typename F>
bool wait_for_yielding(F&& done) {
  const auto give_up = std::chrono::steady_clock::now() + 20s;
  while (!done()) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    aem::this_capsule::sleep_for(200us);
  }
  return true;
}

}  // namespace

TEST_CASE("offload: a blocking call suspends only its capsule: a timer of the core keeps firing") {
  aem::Runtime rt(pool_config(1, 4));
  rt.run([] {
    std::atomic<int> ticks{0};
    auto timer = aem::every(1ms, [&] { ticks.fetch_add(1); });
    REQUIRE(timer);
    int during = 0;
    auto caller = aem::spawn([&] {
      const int before = ticks.load();
      // The call waits for 20 ticks (at most 20 s): only a core left free can deliver them.
      auto r = aem::blocking([&] {
        const auto give_up = std::chrono::steady_clock::now() + 20s;
        std::this_thread::sleep_for(50ms);
        while (ticks.load() - before < 20 && std::chrono::steady_clock::now() < give_up) {
          std::this_thread::sleep_for(1ms);
        }
        return 7;
      });
      during = ticks.load() - before;
      REQUIRE(r);
      CHECK(*r == 7);
    });
    REQUIRE(caller);
    caller->join();
    CHECK(during >= 20);
    CHECK(aem::cancel(*timer));
  });
}

TEST_CASE("offload: values, void, move-only results and exceptions come back to the capsule") {
  AEM_FOR_EACH_CORE_COUNT(cores) {
    aem::Runtime rt(pool_config(cores, 2));
    rt.run([] {
      auto value = aem::blocking([] { return std::string(100, 'x'); });
      REQUIRE(value);
      CHECK(value->size() == 100);

      int side = 0;
      aem::Result<void> nothing = aem::blocking([&] { side = 5; });
      CHECK(nothing);
      CHECK(side == 5);

      auto owned = aem::blocking([] { return std::make_unique<int>(42); });
      REQUIRE(owned);
      std::unique_ptr<int> taken = std::move(*owned);
      CHECK(*taken == 42);

      auto counted = aem::blocking([] { return Counted(3); });
      REQUIRE(counted);
      CHECK(counted->value == 3);

      bool caught = false;
      try {
        (void)aem::blocking([]() -> int { throw std::runtime_error("from the pool"); });
      } catch (const std::runtime_error& e) {
        caught = std::string(e.what()) == "from the pool";
      }
      CHECK(caught);

      const aem::CoreMetrics m = core_metrics();
      CHECK(m.blocking_calls >= 5);
      CHECK(m.blocking_threads >= 1);
      CHECK(m.blocking_threads <= 2);
    });
    CHECK(Counted::live.load() == 0);
  }
}

TEST_CASE("offload: a deadline removes a queued call (never run) and drops a running one's result") {
  aem::Runtime rt(pool_config(1, 1));
  rt.run([] {
    Gate gate;
    std::atomic<int> started{0};
    std::atomic<int> finished{0};
    std::atomic<int> queued_ran{0};
    const int live_before = Counted::live.load();
    // Runs on the only thread and outlives its caller's deadline.
    auto running = aem::spawn([&] {
      auto r = aem::blocking(
          [&] {
            started.fetch_add(1);
            gate.wait();
            finished.fetch_add(1);
            return Counted(1);
          },
          {.deadline = 30ms});
      CHECK(is(r.error(), aem::errc::timed_out));
    });
    REQUIRE(running);
    REQUIRE(wait_for_yielding([&] { return started.load() == 1; }));
    // Queued behind it: removed at its deadline, it never runs.
    auto queued = aem::blocking([&] { queued_ran.fetch_add(1); }, {.deadline = 5ms});
    CHECK(is(queued.error(), aem::errc::timed_out));
    // A deadline already past: refused before it is queued.
    auto late = aem::blocking([&] { queued_ran.fetch_add(1); }, {.deadline = aem::Clock::now() - 1s});
    CHECK(is(late.error(), aem::errc::timed_out));
    running->join();  // gave up at its deadline while the call runs on
    CHECK(finished.load() == 0);
    gate.open.store(true);
    // The dropped result is destroyed on the pool thread once the call ends.
    CHECK(wait_for_yielding([&] { return finished.load() == 1 && Counted::live.load() == live_before; }));
    // The thread is free again: the next call runs, the removed ones never did.
    auto next = aem::blocking([] { return 1; });
    CHECK(next);
    CHECK(started.load() == 1);
    CHECK(finished.load() == 1);
    CHECK(queued_ran.load() == 0);
    const aem::CoreMetrics m = core_metrics();
    CHECK(m.blocking_timeouts == 3);
    CHECK(m.blocking_queued == 0);
    CHECK(m.blocking_busy == 0);
  });
}

TEST_CASE("offload: beyond the queue bound a call is refused at once") {
  aem::Config config = pool_config(1, 1);
  config.blocking_queue_bound = 2;
  aem::Runtime rt(config);
  rt.run([] {
    Gate gate;
    std::atomic<int> ran{0};
    std::atomic<bool> started{false};
    std::vector<aem::Capsule<void>> callers;
    callers.push_back(*aem::spawn([&] {
      CHECK(aem::blocking([&] {
        started.store(true);
        gate.wait();
        ran.fetch_add(1);
      }));
    }));
    REQUIRE(wait_for_yielding([&] { return started.load(); }));
    for (int i = 0; i < 2; ++i) {
      callers.push_back(*aem::spawn([&] { CHECK(aem::blocking([&] { ran.fetch_add(1); })); }));
    }
    REQUIRE(wait_for_yielding([] { return core_metrics().blocking_queued == 2; }));
    bool refused_ran = false;
    auto refused = aem::blocking([&] { refused_ran = true; });
    CHECK(is(refused.error(), aem::errc::blocking_queue_full));
    CHECK(core_metrics().blocking_refusals == 1);
    gate.open.store(true);
    for (auto& c : callers) c.join();
    CHECK(ran.load() == 3);
    CHECK_FALSE(refused_ran);
  });
}

TEST_CASE("offload: queued calls start in the order of their capsules' priorities") {
  aem::Runtime rt(pool_config(1, 1));
  rt.run([] {
    Gate gate;
    std::atomic<bool> started{false};
    std::mutex order_mutex;
    std::vector<int> order;
    auto blocker = aem::spawn([&] { CHECK(aem::blocking([&] { started.store(true); gate.wait(); })); });
    REQUIRE(blocker);
    REQUIRE(wait_for_yielding([&] { return started.load(); }));
    // (priority, tag): tags record the order they ran in.
    const std::vector<std::pair<unsigned, int>> calls = {{2, 20}, {6, 60}, {4, 40}, {6, 61}, {2, 21}, {7, 70}};
    std::vector<aem::Capsule<void>> callers;
    for (const auto& [priority, tag] : calls) {
      auto c = aem::spawn(
          [&, tag = tag] {
            CHECK(aem::blocking([&] {
              std::lock_guard lock(order_mutex);
              order.push_back(tag);
            }));
          },
          {.priority = aem::Priority{static_cast<std::uint8_t>(priority)}});
      REQUIRE(c);
      callers.push_back(std::move(*c));
      // Queued in this order (each caller runs up to its call before the next is spawned).
      REQUIRE(wait_for_yielding([&] { return core_metrics().blocking_queued == callers.size(); }));
    }
    gate.open.store(true);
    blocker->join();
    for (auto& c : callers) c.join();
    CHECK(order == std::vector<int>{70, 60, 61, 40, 20, 21});
  });
}

TEST_CASE("offload: 10000 calls from 1000 capsules each get their own result") {
  aem::Config config = pool_config(2, 8);
  config.capsules_per_core = 64;
  aem::Runtime rt(config);
  rt.run([] {
    constexpr int kCapsules = 1000;
    constexpr int kCalls = 10;
    std::atomic<int> right{0};
    std::vector<aem::Capsule<void>> capsules;
    capsules.reserve(kCapsules);
    for (int i = 0; i < kCapsules; ++i) {
      capsules.push_back(spawn_on(static_cast<unsigned>(i) % 2, [i, &right] {
        for (int j = 0; j < kCalls; ++j) {
          auto r = aem::blocking([i, j] { return i * kCalls + j; });
          if (r && *r == i * kCalls + j) right.fetch_add(1);
        }
      }));
    }
    for (auto& c : capsules) c.join();
    CHECK(right.load() == kCapsules * kCalls);
  });
}

TEST_CASE("offload: an idle pool thread retires after the keep-alive (threads gauge)") {
  aem::Config config = pool_config(1, 4);
  config.blocking_keep_alive = 20ms;
  aem::Runtime rt(config);
  rt.run([] {
    CHECK(core_metrics().blocking_threads == 0);  // started on demand only
    CHECK(aem::blocking([] { return 1; }));
    CHECK(core_metrics().blocking_threads >= 1);
    CHECK(wait_for_yielding([] { return core_metrics().blocking_threads == 0; }));
    CHECK(aem::blocking([] { return 2; }));  // and a new one starts for the next call
  });
}

TEST_CASE("offload: outside a capsule, in an inline handler, and with a bad config") {
  aem::Runtime rt(pool_config(1, 2));
  REQUIRE(rt.start());
  auto outside = aem::blocking([] { return 1; });
  CHECK(is(outside.error(), aem::errc::not_in_capsule));
  std::atomic<bool> checked{false};
  rt.submit(0, [&] {
    auto id = aem::after(0ms, [&] {
      bool ran = false;
      auto r = aem::blocking([&] { ran = true; });
      CHECK(is(r.error(), aem::errc::inline_handler_blocked));
      CHECK_FALSE(ran);
      checked.store(true);
    }, {.exec = aem::Executor::inline_handler});
    REQUIRE(id);
    yield_until([&] { return checked.load(); });
  }).get();
  CHECK(checked.load());
  rt.stop();

  aem::Config bad = pool_config(1, 0);
  aem::Runtime refused(bad);
  CHECK(is(refused.start().error(), aem::errc::invalid_argument));
}

TEST_CASE("offload: a stop drops queued calls and leaves running ones, reported, to finish") {
  aem::Config config = pool_config(1, 1);
  config.blocking_shutdown_wait = 20ms;
  auto gate = std::make_shared<Gate>();
  auto finished = std::make_shared<std::atomic<int>>(0);
  std::atomic<bool> started{false};
  std::atomic<int> queued_ran{0};
  std::atomic<int> shutting_down{0};
  {
    aem::Runtime rt(config);
    REQUIRE(rt.start());
    auto running = rt.submit(0, [&, gate, finished] {
      auto r = aem::blocking([&started, gate, finished] {
        started.store(true);
        gate->wait();
        finished->fetch_add(1);
        return Counted(9);
      });
      if (is(r.error(), aem::errc::shutting_down)) shutting_down.fetch_add(1);
    });
    auto queued = rt.submit(0, [&] {
      while (!started.load()) aem::this_capsule::sleep_for(100us);
      auto r = aem::blocking([&] { queued_ran.fetch_add(1); });
      if (is(r.error(), aem::errc::shutting_down)) shutting_down.fetch_add(1);
    });
    while (!started.load()) std::this_thread::sleep_for(100us);
    rt.submit(0, [] {
      while (core_metrics().blocking_queued != 1) aem::this_capsule::sleep_for(100us);
    }).get();
    rt.stop();  // waits 20 ms for the running call, reports it, returns
    running.get();
    queued.get();
    CHECK(shutting_down.load() == 2);
    CHECK(finished->load() == 0);
  }
  // The runtime is gone; the thread finishes the call and drops its result alone.
  gate->open.store(true);
  const auto give_up = std::chrono::steady_clock::now() + 20s;
  while ((finished->load() != 1 || Counted::live.load() != 0) && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(1ms);
  }
  CHECK(finished->load() == 1);
  CHECK(Counted::live.load() == 0);
  CHECK(queued_ran.load() == 0);
}

TEST_CASE("offload: a runtime restarts with its pool") {
  aem::Runtime rt(pool_config(2, 2));
  for (int round = 0; round < 3; ++round) {
    REQUIRE(rt.start());
    CHECK(rt.submit(1, [round] { return *aem::blocking([round] { return round; }); }).get() == round);
    rt.stop();
  }
}
