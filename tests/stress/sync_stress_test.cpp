// Stress tests for the synchronisation primitives: many capsules on 4 cores (oversubscribed on a
// 2-CPU machine), about a second of work each, mixing blocking calls, deadlines that race the
// hand-offs, try_* calls and plain threads. Every check is an invariant (exclusion, conservation
// of permits and values, per-producer order), never a timing. Loops stop at a time budget so
// the suite takes about as long on a slow machine; the checks hold for any number of rounds.
#include "support/cores.hpp"
#include "support/sync_helpers.hpp"

#include <aem/capsule.hpp>
#include <aem/channel.hpp>
#include <aem/condvar.hpp>
#include <aem/cross_core.hpp>
#include <aem/mutex.hpp>
#include <aem/runtime.hpp>
#include <aem/semaphore.hpp>
#include <aem/wait_group.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

using aem_test::is;
using aem_test::spawn_on;
using aem_test::spin_for;

constexpr unsigned kCores = 4;
constexpr auto kBudget = 1s;

// Budget tells the workers when to stop starting new rounds.
struct Budget {
  aem::TimePoint end = aem::Clock::now() + kBudget;
  bool over() const { return aem::Clock::now() >= end; }
};

}  // namespace

TEST_CASE("sync stress: mutex with 64 capsules on 4 cores, some with deadlines") {
  aem::Runtime rt(aem_test::config_for(kCores));
  constexpr int kCapsules = 64;
  aem::Mutex mutex;
  std::uint64_t counter = 0;  // not atomic: guarded by mutex
  std::atomic<std::uint64_t> entries{0};
  std::atomic<std::uint64_t> timeouts{0};
  std::atomic<int> owners{0};
  std::atomic<int> overlaps{0};
  rt.run([&] {
    Budget budget;
    std::vector<aem::Capsule<void>> all;
    for (int c = 0; c < kCapsules; ++c) {
      all.push_back(spawn_on(static_cast<unsigned>(c) % kCores, [&, c] {
        std::mt19937 rng(static_cast<unsigned>(c));
        while (!budget.over()) {
          const unsigned mode = rng() % 10;
          if (mode == 0) {
            if (!mutex.lock(std::chrono::microseconds(rng() % 200))) {
              timeouts.fetch_add(1);
              continue;
            }
          } else if (mode == 1) {
            if (!mutex.try_lock()) continue;
          } else {
            mutex.lock();
          }
          if (owners.fetch_add(1) != 0) overlaps.fetch_add(1);
          ++counter;
          if (rng() % 16 == 0) aem::this_capsule::yield();
          if (rng() % 64 == 0) spin_for(static_cast<std::int64_t>(rng() % 5'000));
          owners.fetch_sub(1);
          mutex.unlock();
          entries.fetch_add(1);
        }
      }));
    }
    for (auto& c : all) c.join();
  });
  MESSAGE("mutex entries: " << entries.load() << ", timeouts: " << timeouts.load());
  CHECK(overlaps.load() == 0);
  CHECK(counter == entries.load());
  CHECK(entries.load() > 0);
  CHECK(mutex.try_lock());
  mutex.unlock();
}

TEST_CASE("sync stress: channel MPMC keeps per-producer order and loses nothing") {
  aem::Runtime rt(aem_test::config_for(kCores));
  constexpr int kProducers = 8;
  constexpr int kConsumers = 8;
  aem::Channel<std::uint64_t> ch(8);  // value: producer << 32 | sequence
  std::vector<std::atomic<std::uint64_t>> sent_count(kProducers);
  std::vector<std::atomic<std::uint64_t>> sent_sum(kProducers);
  std::vector<std::atomic<std::uint64_t>> got_count(kProducers);
  std::vector<std::atomic<std::uint64_t>> got_sum(kProducers);
  std::atomic<int> order_violations{0};
  rt.run([&] {
    Budget budget;
    std::vector<aem::Capsule<void>> producers;
    std::vector<aem::Capsule<void>> consumers;
    for (int p = 0; p < kProducers; ++p) {
      producers.push_back(spawn_on(static_cast<unsigned>(p) % kCores, [&, p] {
        std::mt19937 rng(static_cast<unsigned>(p) + 1);
        for (std::uint64_t seq = 1; !budget.over(); ++seq) {
          std::uint64_t v = (static_cast<std::uint64_t>(p) << 32) | seq;
          aem::Result<void> r;
          switch (rng() % 4) {
            case 0: r = ch.send(std::move(v), std::chrono::microseconds(rng() % 100)); break;
            case 1: r = ch.try_send(std::move(v)); break;
            default: r = ch.send(std::move(v)); break;
          }
          if (r) {
            sent_count[static_cast<std::size_t>(p)].fetch_add(1);
            sent_sum[static_cast<std::size_t>(p)].fetch_add(seq);
          } else {
            CHECK((is(r.error(), aem::errc::timed_out) || is(r.error(), aem::errc::would_block)));
          }
        }
      }));
    }
    for (int c = 0; c < kConsumers; ++c) {
      consumers.push_back(spawn_on(static_cast<unsigned>(c + 1) % kCores, [&, c] {
        std::mt19937 rng(static_cast<unsigned>(c) + 100);
        std::vector<std::uint64_t> last(kProducers, 0);
        for (;;) {
          aem::Result<std::uint64_t> r = aem::errc::would_block;
          switch (rng() % 4) {
            case 0: r = ch.receive(std::chrono::microseconds(rng() % 100)); break;
            case 1: r = ch.try_receive(); break;
            default: r = ch.receive(); break;
          }
          if (!r) {
            if (is(r.error(), aem::errc::channel_closed)) return;
            if (is(r.error(), aem::errc::would_block)) aem::this_capsule::yield();
            continue;
          }
          const auto p = static_cast<std::size_t>(*r >> 32);
          const std::uint64_t seq = *r & 0xffffffffu;
          if (seq <= last[p]) order_violations.fetch_add(1);
          last[p] = seq;
          got_count[p].fetch_add(1);
          got_sum[p].fetch_add(seq);
          if (rng() % 32 == 0) aem::this_capsule::yield();
        }
      }));
    }
    for (auto& p : producers) p.join();
    ch.close();
    for (auto& c : consumers) c.join();
  });
  std::uint64_t total = 0;
  for (std::size_t p = 0; p < kProducers; ++p) {
    CAPTURE(p);
    CHECK(got_count[p].load() == sent_count[p].load());
    CHECK(got_sum[p].load() == sent_sum[p].load());
    total += got_count[p].load();
  }
  MESSAGE("channel values delivered: " << total);
  CHECK(total > 0);
  CHECK(order_violations.load() == 0);
}

TEST_CASE("sync stress: semaphore bounds concurrency and conserves permits") {
  aem::Runtime rt(aem_test::config_for(kCores));
  constexpr int kCapsules = 48;
  constexpr std::size_t kPermits = 3;
  aem::Semaphore sem(kPermits);
  std::atomic<int> inside{0};
  std::atomic<int> too_many{0};
  std::atomic<std::uint64_t> entries{0};
  rt.run([&] {
    Budget budget;
    std::vector<aem::Capsule<void>> all;
    for (int c = 0; c < kCapsules; ++c) {
      all.push_back(spawn_on(static_cast<unsigned>(c) % kCores, [&, c] {
        std::mt19937 rng(static_cast<unsigned>(c) + 3);
        while (!budget.over()) {
          const unsigned mode = rng() % 4;
          if (mode == 0) {
            if (!sem.acquire(std::chrono::microseconds(rng() % 150))) continue;
          } else if (mode == 1) {
            if (!sem.try_acquire()) {
              aem::this_capsule::yield();
              continue;
            }
          } else {
            sem.acquire();
          }
          if (inside.fetch_add(1) >= static_cast<int>(kPermits)) too_many.fetch_add(1);
          if (rng() % 4 == 0) aem::this_capsule::yield();
          inside.fetch_sub(1);
          sem.release();
          entries.fetch_add(1);
        }
      }));
    }
    for (auto& c : all) c.join();
  });
  MESSAGE("semaphore entries: " << entries.load());
  CHECK(too_many.load() == 0);
  CHECK(sem.count() == kPermits);
}

TEST_CASE("sync stress: condvar bounded queue with deadlines and notify_all") {
  aem::Runtime rt(aem_test::config_for(kCores));
  constexpr int kProducers = 6;
  constexpr int kConsumers = 6;
  constexpr std::size_t kBound = 3;
  aem::Mutex mutex;
  aem::CondVar not_empty;
  aem::CondVar not_full;
  std::deque<std::uint64_t> queue;
  int producers_left = kProducers;
  std::atomic<std::uint64_t> produced_sum{0};
  std::atomic<std::uint64_t> consumed_sum{0};
  std::atomic<std::uint64_t> produced{0};
  std::atomic<std::uint64_t> consumed{0};
  rt.run([&] {
    Budget budget;
    std::vector<aem::Capsule<void>> all;
    for (int p = 0; p < kProducers; ++p) {
      all.push_back(spawn_on(static_cast<unsigned>(p) % kCores, [&, p] {
        std::mt19937 rng(static_cast<unsigned>(p) + 21);
        for (std::uint64_t v = 1; !budget.over(); ++v) {
          std::unique_lock lock(mutex);
          if (!not_full.wait(lock, std::chrono::microseconds(rng() % 200), [&] { return queue.size() < kBound; })) {
            continue;  // timed out: skip this value
          }
          queue.push_back(v);
          produced.fetch_add(1);
          produced_sum.fetch_add(v);
          lock.unlock();
          if (rng() % 2 == 0) not_empty.notify_one();
          else not_empty.notify_all();
        }
        std::lock_guard guard(mutex);
        if (--producers_left == 0) not_empty.notify_all();
      }));
    }
    for (int c = 0; c < kConsumers; ++c) {
      all.push_back(spawn_on(static_cast<unsigned>(c + 2) % kCores, [&, c] {
        std::mt19937 rng(static_cast<unsigned>(c) + 42);
        for (;;) {
          std::unique_lock lock(mutex);
          auto ready = [&] { return !queue.empty() || producers_left == 0; };
          if (rng() % 2 == 0) {
            if (!not_empty.wait(lock, std::chrono::microseconds(rng() % 200), ready)) continue;
          } else {
            not_empty.wait(lock, ready);
          }
          if (queue.empty()) return;  // producers done and drained
          consumed_sum.fetch_add(queue.front());
          consumed.fetch_add(1);
          queue.pop_front();
          lock.unlock();
          not_full.notify_one();
        }
      }));
    }
    for (auto& c : all) c.join();
  });
  MESSAGE("condvar queue items: " << consumed.load());
  CHECK(queue.empty());
  CHECK(consumed.load() == produced.load());
  CHECK(consumed_sum.load() == produced_sum.load());
}

TEST_CASE("sync stress: wait group rounds fan out to every core") {
  aem::Runtime rt(aem_test::config_for(kCores));
  std::atomic<std::uint64_t> tasks{0};
  std::uint64_t rounds = 0;
  rt.run([&] {
    Budget budget;
    while (!budget.over()) {
      aem::WaitGroup wg;
      std::atomic<int> finished{0};
      constexpr int kTasks = 16;
      wg.add(kTasks);
      for (int i = 0; i < kTasks; ++i) {
        REQUIRE(aem::post(static_cast<unsigned>(i) % kCores, [&] {
          if (finished.load() % 3 == 0) aem::this_capsule::yield();
          finished.fetch_add(1);
          tasks.fetch_add(1);
          wg.done();
        }));
      }
      // A second waiter on another core, with a deadline that may or may not pass.
      auto other = spawn_on(static_cast<unsigned>(rounds % (kCores - 1)) + 1, [&] {
        if (wg.wait(std::chrono::microseconds(rounds % 100))) CHECK(finished.load() == kTasks);
        wg.wait();
        CHECK(finished.load() == kTasks);
      });
      wg.wait();
      CHECK(finished.load() == kTasks);
      other.join();  // before wg and finished go out of scope
      ++rounds;
    }
  });
  MESSAGE("wait group rounds: " << rounds);
  CHECK(tasks.load() == rounds * 16);
}

TEST_CASE("sync stress: plain threads release, send and notify while capsules wait") {
  aem::Runtime rt(aem_test::config_for(kCores));
  constexpr int kWaiters = 16;
  aem::Semaphore sem;
  aem::Channel<int> ch(4);
  std::atomic<std::uint64_t> released{0};
  std::atomic<std::uint64_t> acquired{0};
  std::atomic<std::uint64_t> sent{0};
  std::atomic<std::uint64_t> received{0};
  std::atomic<bool> stop{false};
  rt.run([&] {
    std::vector<aem::Capsule<void>> all;
    for (int c = 0; c < kWaiters; ++c) {
      all.push_back(spawn_on(static_cast<unsigned>(c) % kCores, [&, c] {
        std::mt19937 rng(static_cast<unsigned>(c) + 9);
        for (;;) {
          if (c % 2 == 0) {
            if (sem.acquire(std::chrono::microseconds(rng() % 300))) acquired.fetch_add(1);
            else if (stop.load()) return;
          } else {
            aem::Result<int> r = ch.receive(std::chrono::microseconds(rng() % 300));
            if (r) received.fetch_add(static_cast<std::uint64_t>(*r));
            else if (is(r.error(), aem::errc::channel_closed)) return;
          }
        }
      }));
    }
    std::vector<std::thread> threads;
    for (int t = 0; t < 2; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937 rng(static_cast<unsigned>(t) + 77);
        Budget budget;
        while (!budget.over()) {
          if (t == 0) {
            const std::size_t n = 1 + rng() % 3;
            sem.release(n);
            released.fetch_add(n);
          } else if (ch.try_send(1)) {
            sent.fetch_add(1);
          }
          if (rng() % 8 == 0) std::this_thread::yield();
        }
      });
    }
    for (auto& t : threads) t.join();
    stop = true;
    ch.close();
    for (auto& c : all) c.join();
  });
  MESSAGE("permits acquired: " << acquired.load() << ", values received: " << received.load());
  CHECK(received.load() == sent.load());
  CHECK(acquired.load() > 0);
  // Every permit released went to exactly one waiter or is still counted.
  CHECK(acquired.load() + sem.count() == released.load());
}
