// aem::CondVar: producer/consumer across cores, notify_one / notify_all, waits with a
// predicate and with a deadline (also racing notifies). A lost notify shows up as a hang
// (ctest's 300 s timeout).
#include "support/cores.hpp"
#include "support/sync_helpers.hpp"

#include <aem/capsule.hpp>
#include <aem/condvar.hpp>
#include <aem/mutex.hpp>
#include <aem/runtime.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <random>
#include <system_error>
#include <vector>

using namespace std::chrono_literals;
using namespace aem_test;  // is, spawn_on, spin_for

TEST_CASE("sync: condvar producer/consumer over a bounded queue across cores") {
  AEM_FOR_EACH_CORE_COUNT(cores) {
    aem::Runtime rt(aem_test::config_for(cores));
    constexpr int kProducers = 4;
    constexpr int kPerProducer = 2000;
    constexpr std::size_t kBound = 4;
    aem::Mutex mutex;
    aem::CondVar not_empty;
    aem::CondVar not_full;
    std::deque<int> queue;
    int producers_left = kProducers;
    long consumed_sum = 0;
    long consumed_count = 0;
    rt.run([&] {
      std::vector<aem::Capsule<void>> all;
      for (int p = 0; p < kProducers; ++p) {
        all.push_back(spawn_on(static_cast<unsigned>(p) % cores, [&, p] {
          for (int i = 1; i <= kPerProducer; ++i) {
            std::unique_lock lock(mutex);
            not_full.wait(lock, [&] { return queue.size() < kBound; });
            queue.push_back(p * kPerProducer + i);
            not_empty.notify_one();
          }
          std::lock_guard guard(mutex);
          if (--producers_left == 0) not_empty.notify_all();
        }));
      }
      for (int c = 0; c < 3; ++c) {
        all.push_back(spawn_on(static_cast<unsigned>(c + 1) % cores, [&] {
          for (;;) {
            std::unique_lock lock(mutex);
            not_empty.wait(lock, [&] { return !queue.empty() || producers_left == 0; });
            if (queue.empty()) return;
            consumed_sum += queue.front();
            ++consumed_count;
            queue.pop_front();
            not_full.notify_one();
          }
        }));
      }
      for (auto& c : all) c.join();
    });
    const long n = long{kProducers} * kPerProducer;
    CHECK(consumed_count == n);
    CHECK(consumed_sum == n * (n + 1) / 2);
  }
}

TEST_CASE("sync: condvar notify_all wakes every waiter and notify_one wakes one each") {
  AEM_FOR_EACH_CORE_COUNT(cores) {
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([cores] {
      constexpr int kWaiters = 12;
      aem::Mutex mutex;
      aem::CondVar cv;
      for (bool all : {true, false}) {
        CAPTURE(all);
        int waiting = 0;
        std::atomic<int> woken{0};
        std::vector<aem::Capsule<void>> waiters;
        for (int i = 0; i < kWaiters; ++i) {
          waiters.push_back(spawn_on(static_cast<unsigned>(i) % cores, [&] {
            std::unique_lock lock(mutex);
            ++waiting;
            cv.wait(lock);  // no predicate: a lost notify would hang here
            CHECK(lock.owns_lock());
            woken.fetch_add(1);
          }));
        }
        // Once `waiting` reads kWaiters under the mutex, every waiter is queued on cv.
        for (;;) {
          std::unique_lock lock(mutex);
          if (waiting == kWaiters) break;
          lock.unlock();
          aem::this_capsule::yield();
        }
        if (all) {
          cv.notify_all();
        } else {
          for (int i = 0; i < kWaiters; ++i) cv.notify_one();
        }
        for (auto& w : waiters) w.join();
        CHECK(woken.load() == kWaiters);
      }
      cv.notify_one();  // nobody waits: no effect
      cv.notify_all();
    });
  }
}

TEST_CASE("sync: condvar waits with a predicate and with a deadline") {
  AEM_FOR_EACH_CORE_COUNT(cores) {
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([cores] {
      aem::Mutex mutex;
      aem::CondVar cv;
      int stage = 0;
      auto waiter = spawn_on(cores - 1, [&] {
        std::unique_lock lock(mutex);
        cv.wait(lock, [&] { return stage == 3; });  // notified at stages 1 and 2 too
        CHECK(stage == 3);
        CHECK(lock.owns_lock());
        stage = 4;
        cv.notify_all();
      });
      for (int s = 1; s <= 3; ++s) {
        {
          std::lock_guard guard(mutex);
          stage = s;
        }
        cv.notify_all();
        aem::this_capsule::yield();
      }
      {
        std::unique_lock lock(mutex);
        CHECK(cv.wait(lock, 60s, [&] { return stage == 4; }));
        // A deadline with nobody notifying: timed_out, and the lock is held again.
        aem::Result<void> r = cv.wait(lock, 1ms);
        CHECK(is(r.error(), aem::errc::timed_out));
        CHECK(lock.owns_lock());
        CHECK_FALSE(cv.wait(lock, 1ms, [] { return false; }));
        CHECK(lock.owns_lock());
        CHECK(cv.wait(lock, aem::Clock::now() - 1s, [] { return true; }));
      }
      waiter.join();
      // wait() requires the lock to be held.
      std::unique_lock unlocked(mutex, std::defer_lock);
      CHECK_THROWS_AS(cv.wait(unlocked), std::system_error);
    });
  }
}

// ---- deadlines racing hand-offs ------------------------------------------------------------

TEST_CASE("sync: condvar deadlines racing notifies always end with the lock held") {
  AEM_FOR_EACH_CORE_COUNT(cores) {
    aem::Runtime rt(aem_test::config_for(cores));
    static constexpr int kRounds = 1500;
    rt.run([cores] {
      aem::Mutex mutex;
      aem::CondVar cv;
      std::atomic<bool> done{false};
      long notified = 0;
      long timed_out = 0;
      auto notifier = spawn_on(cores > 1 ? 1 : 0, [&] {
        std::mt19937 rng(5);
        while (!done.load()) {
          cv.notify_one();
          spin_for(static_cast<std::int64_t>(rng() % 50'000));
          aem::this_capsule::yield();
        }
      });
      std::mt19937 rng(6);
      for (int i = 0; i < kRounds; ++i) {
        std::unique_lock lock(mutex);
        aem::Result<void> r = cv.wait(lock, std::chrono::microseconds(rng() % 100));
        CHECK(lock.owns_lock());
        (r ? notified : timed_out) += 1;
      }
      done = true;
      notifier.join();
      CHECK(notified + timed_out == kRounds);
    });
  }
}
