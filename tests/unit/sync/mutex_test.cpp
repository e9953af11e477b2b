// aem::Mutex: mutual exclusion across cores, FIFO hand-off without barging, lock with a
// deadline (also racing hand-offs), try_lock and the std lock types, and plain threads.
// Ordering is forced through the primitive itself; a deadline only decides which of two
// correct outcomes happens, and a lost wake-up shows up as a hang (ctest's 300 s timeout).
#include "support/cores.hpp"
#include "support/sync_helpers.hpp"

#include <aem/capsule.hpp>
#include <aem/mutex.hpp>
#include <aem/runtime.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <random>
#include <system_error>
#include <vector>

using namespace std::chrono_literals;
using namespace aem_test;  // is, spawn_on, spin_for, yield_until

TEST_CASE("sync: mutex excludes capsules on all cores from a non-atomic counter") {
  AEM_FOR_EACH_CORE_COUNT(cores) {
    aem::Runtime rt(aem_test::config_for(cores));
    constexpr int kCapsules = 16;
    static constexpr int kRounds = 2000;
    aem::Mutex mutex;
    long counter = 0;  // deliberately not atomic
    std::atomic<int> inside{0};
    std::atomic<int> overlaps{0};
    rt.run([&] {
      std::vector<aem::Capsule<void>> workers;
      for (int i = 0; i < kCapsules; ++i) {
        workers.push_back(spawn_on(static_cast<unsigned>(i) % cores, [&, i] {
          for (int r = 0; r < kRounds; ++r) {
            std::lock_guard guard(mutex);
            if (inside.fetch_add(1) != 0) overlaps.fetch_add(1);
            const long seen = counter;
            if ((r + i) % 64 == 0) aem::this_capsule::yield();  // hold it across a suspension
            counter = seen + 1;
            inside.fetch_sub(1);
          }
        }));
      }
      for (auto& w : workers) w.join();
    });
    CHECK(overlaps.load() == 0);
    CHECK(counter == long{kCapsules} * kRounds);
  }
}

TEST_CASE("sync: mutex hands ownership to waiters in FIFO order, without barging") {
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([] {
    aem::Mutex mutex;
    std::vector<int> order;
    std::atomic<int> queued{0};
    mutex.lock();
    std::vector<aem::Capsule<void>> waiters;
    for (int i = 0; i < 6; ++i) {
      waiters.push_back(spawn_on(0, [&, i] {
        queued.fetch_add(1);
        mutex.lock();  // one core: nothing runs between the increment and the suspension
        order.push_back(i);
        mutex.unlock();
      }));
      yield_until([&] { return queued.load() == i + 1; });
    }
    mutex.unlock();  // hands the mutex to waiter 0, which has not run yet
    CHECK_FALSE(mutex.try_lock());
    for (auto& w : waiters) w.join();
    CHECK(order == std::vector<int>{0, 1, 2, 3, 4, 5});
    CHECK(mutex.try_lock());
    mutex.unlock();
  });
}

TEST_CASE("sync: mutex lock with a deadline times out while held and succeeds once released") {
  AEM_FOR_EACH_CORE_COUNT(cores) {
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([cores] {
      aem::Mutex mutex;
      const unsigned other = cores - 1;
      mutex.lock();
      auto timed = spawn_on(other, [&] {
        aem::Result<void> r = mutex.lock(2ms);
        CHECK(is(r.error(), aem::errc::timed_out));
        r = mutex.lock(aem::Clock::now() - 1s);  // already past, and held
        CHECK(is(r.error(), aem::errc::timed_out));
      });
      timed.join();
      std::atomic<bool> got{false};
      auto patient = spawn_on(other, [&] {
        aem::Result<void> r = mutex.lock(60s);
        CHECK(r.has_value());
        got = true;
        mutex.unlock();
      });
      CHECK_FALSE(got.load());
      mutex.unlock();
      patient.join();
      CHECK(got.load());
      // Free: taken even with an expired deadline.
      CHECK(mutex.lock(aem::Clock::now() - 1s).has_value());
      mutex.unlock();
    });
  }
}

TEST_CASE("sync: a waiter that timed out in the middle of the queue is skipped") {
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([] {
    aem::Mutex mutex;
    std::vector<char> order;
    std::atomic<int> queued{0};
    mutex.lock();
    auto a = spawn_on(0, [&] {
      queued.fetch_add(1);
      mutex.lock();
      order.push_back('a');
      mutex.unlock();
    });
    yield_until([&] { return queued.load() == 1; });
    auto b = spawn_on(0, [&] {
      queued.fetch_add(1);
      CHECK(is(mutex.lock(1ms).error(), aem::errc::timed_out));
      order.push_back('b');
    });
    yield_until([&] { return queued.load() == 2; });
    auto c = spawn_on(0, [&] {
      queued.fetch_add(1);
      mutex.lock();
      order.push_back('c');
      mutex.unlock();
    });
    yield_until([&] { return queued.load() == 3; });
    b.join();  // b gave up while a and c still wait
    mutex.unlock();
    a.join();
    c.join();
    CHECK(order == std::vector<char>{'b', 'a', 'c'});
  });
}

TEST_CASE("sync: mutex try_lock, std::unique_lock and plain threads") {
  aem::Runtime rt(aem_test::config_for(2));
  aem::Mutex mutex;
  rt.run([&] {
    CHECK(mutex.try_lock());
    CHECK_FALSE(mutex.try_lock());
    auto other = spawn_on(1, [&] { CHECK_FALSE(mutex.try_lock()); });
    other.join();
    mutex.unlock();
    {
      std::unique_lock lock(mutex, std::try_to_lock);
      CHECK(lock.owns_lock());
    }
    std::scoped_lock both(mutex);
    CHECK_FALSE(mutex.try_lock());
  });
  // From a plain thread: try_lock/unlock work, lock() throws even when the mutex is free.
  CHECK(mutex.try_lock());
  mutex.unlock();
  try {
    mutex.lock();
    FAIL("lock() from a plain thread must throw");
  } catch (const std::system_error& e) {
    CHECK(is(e.code(), aem::errc::not_in_capsule));
  }
  CHECK(mutex.try_lock());  // the failed lock() took nothing
  mutex.unlock();
}

// ---- deadlines racing hand-offs ------------------------------------------------------------

TEST_CASE("sync: mutex timeouts racing hand-offs never make two owners") {
  AEM_FOR_EACH_CORE_COUNT(cores) {
    aem::Runtime rt(aem_test::config_for(cores));
    constexpr int kCapsules = 8;
    constexpr int kAttempts = 800;
    aem::Mutex mutex;
    long counter = 0;  // not atomic: guarded by mutex
    std::atomic<int> owners{0};
    std::atomic<int> overlaps{0};
    std::atomic<long> successes{0};
    rt.run([&] {
      std::vector<aem::Capsule<void>> all;
      for (int c = 0; c < kCapsules; ++c) {
        all.push_back(spawn_on(static_cast<unsigned>(c) % cores, [&, c] {
          std::mt19937 rng(static_cast<unsigned>(c) + 11);
          for (int i = 0; i < kAttempts; ++i) {
            if (!mutex.lock(std::chrono::microseconds(rng() % 100))) continue;
            if (owners.fetch_add(1) != 0) overlaps.fetch_add(1);
            ++counter;
            spin_for(static_cast<std::int64_t>(rng() % 20'000));
            if (rng() % 8 == 0) aem::this_capsule::yield();
            owners.fetch_sub(1);
            mutex.unlock();
            successes.fetch_add(1);
          }
        }));
      }
      for (auto& c : all) c.join();
      CHECK(mutex.try_lock());  // nobody holds it at the end
      mutex.unlock();
    });
    CHECK(overlaps.load() == 0);
    CHECK(counter == successes.load());
    CHECK(successes.load() > 0);
  }
}
