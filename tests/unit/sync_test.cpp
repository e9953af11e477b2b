// Unit tests for the fiber synchronisation primitives: Mutex, CondVar, Semaphore, WaitGroup and
// Channel<T>, on 1, 2 and 4 cores. Nothing here asserts on wall-clock time: ordering is forced
// through the primitives themselves, and deadlines only decide which of two correct outcomes
// happens. A lost wake-up shows up as a hang (ctest's 300 s timeout).
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

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

using aem_test::is;
using aem_test::spawn_on;
using aem_test::spin_for;

// yield_until yields the calling capsule until `done()`.
template <typename F>
void yield_until(F&& done) {
  while (!done()) aem::this_capsule::yield();
}

// Bump counts its destructions: proof that a capsule was unwound.
struct Bump {
  std::atomic<int>* counter;
  ~Bump() { counter->fetch_add(1); }
};

}  // namespace

// ---- Mutex -------------------------------------------------------------------------------

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

// ---- CondVar -----------------------------------------------------------------------------

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

// ---- Semaphore ---------------------------------------------------------------------------

TEST_CASE("sync: semaphore counts permits and times out") {
  AEM_FOR_EACH_CORE_COUNT(cores) {
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([cores] {
      aem::Semaphore sem(3);
      CHECK(sem.count() == 3);
      CHECK(sem.try_acquire());
      sem.acquire();
      CHECK(sem.acquire(1ms).has_value());
      CHECK_FALSE(sem.try_acquire());
      CHECK(is(sem.acquire(1ms).error(), aem::errc::timed_out));
      CHECK(is(sem.acquire(aem::Clock::now() - 1s).error(), aem::errc::timed_out));
      sem.release(2);
      CHECK(sem.count() == 2);
      CHECK(sem.acquire(aem::Clock::now() - 1s).has_value());  // available: taken even if late
      CHECK(sem.count() == 1);
      CHECK(sem.try_acquire());

      // release(n) wakes n waiters on other cores; each gets exactly one permit.
      constexpr int kWaiters = 6;
      std::atomic<int> got{0};
      std::vector<aem::Capsule<void>> waiters;
      for (int i = 0; i < kWaiters; ++i) {
        waiters.push_back(spawn_on(static_cast<unsigned>(i) % cores, [&] {
          sem.acquire();
          got.fetch_add(1);
        }));
      }
      sem.release(4);
      yield_until([&] { return got.load() == 4; });
      CHECK(sem.count() == 0);
      sem.release(3);  // two for the last waiters, one left over
      for (auto& w : waiters) w.join();
      CHECK(got.load() == kWaiters);
      CHECK(sem.count() == 1);
    });
  }
}

// ---- WaitGroup ---------------------------------------------------------------------------

TEST_CASE("sync: wait group waits for capsules on all cores") {
  AEM_FOR_EACH_CORE_COUNT(cores) {
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([cores] {
      aem::WaitGroup wg;
      CHECK(wg.wait(aem::Clock::now() - 1s).has_value());  // zero: no wait at all
      wg.wait();
      constexpr int kTasks = 40;
      std::atomic<int> finished{0};
      wg.add(kTasks);
      for (int i = 0; i < kTasks; ++i) {
        REQUIRE(aem::post(static_cast<unsigned>(i) % cores, [&] {
          aem::this_capsule::yield();
          finished.fetch_add(1);
          wg.done();
        }));
      }
      // Several waiters on different cores are all released by the last done().
      std::vector<aem::Capsule<void>> waiters;
      for (unsigned c = 0; c < cores; ++c) {
        waiters.push_back(spawn_on(c, [&] {
          wg.wait();
          CHECK(finished.load() == kTasks);
        }));
      }
      wg.wait();
      CHECK(finished.load() == kTasks);
      CHECK(wg.count() == 0);
      for (auto& w : waiters) w.join();

      wg.add();
      CHECK(is(wg.wait(1ms).error(), aem::errc::timed_out));
      wg.done();
      CHECK(wg.wait(1ms).has_value());
      CHECK_THROWS_AS(wg.done(), std::logic_error);
      CHECK(wg.count() == 0);
    });
  }
}

// ---- Channel -----------------------------------------------------------------------------

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

// ---- plain threads -----------------------------------------------------------------------

TEST_CASE("sync: a plain thread notifies, releases and closes what capsules wait on") {
  AEM_FOR_EACH_CORE_COUNT(cores) {
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([cores] {
      aem::Mutex mutex;
      aem::CondVar cv;
      aem::Semaphore sem;
      aem::WaitGroup wg(1);
      aem::Channel<int> values(1);
      aem::Channel<int> never(1);
      bool waiting = false;
      bool go = false;
      std::atomic<int> stage{0};
      auto capsule = spawn_on(cores - 1, [&] {
        {
          std::unique_lock lock(mutex);
          waiting = true;
          cv.wait(lock);  // no predicate: the thread notifies only once we are queued
          CHECK(go);
        }
        stage = 1;
        sem.acquire();
        stage = 2;
        wg.wait();
        stage = 3;
        CHECK(values.receive().value() == 42);
        stage = 4;
        CHECK(is(never.receive().error(), aem::errc::channel_closed));
      });
      std::thread thread([&] {
        // try_lock/unlock from a plain thread; once `waiting` is seen under the mutex, the
        // capsule is queued on cv.
        for (;;) {
          while (!mutex.try_lock()) std::this_thread::yield();
          const bool queued = waiting;
          if (queued) go = true;
          mutex.unlock();
          if (queued) break;
          std::this_thread::yield();
        }
        cv.notify_one();
        while (stage.load() < 1) std::this_thread::yield();
        std::this_thread::sleep_for(1ms);  // likely parked by now (either way is correct)
        sem.release();
        while (stage.load() < 2) std::this_thread::yield();
        std::this_thread::sleep_for(1ms);
        wg.done();
        while (stage.load() < 3) std::this_thread::yield();
        std::this_thread::sleep_for(1ms);
        while (!values.try_send(42)) std::this_thread::yield();
        while (stage.load() < 4) std::this_thread::yield();
        std::this_thread::sleep_for(1ms);
        never.close();
      });
      capsule.join();
      thread.join();
    });
  }
}

TEST_CASE("sync: blocking calls from a plain thread throw not_in_capsule") {
  aem::Mutex mutex;
  aem::CondVar cv;
  aem::Semaphore sem(1);
  aem::WaitGroup wg;
  aem::Channel<int> ch(1);
  auto expect_not_in_capsule = [](auto&& call) {
    try {
      call();
      FAIL("expected std::system_error");
    } catch (const std::system_error& e) {
      CHECK(is(e.code(), aem::errc::not_in_capsule));
    }
  };
  expect_not_in_capsule([&] { mutex.lock(); });
  expect_not_in_capsule([&] { (void)mutex.lock(1ms); });
  expect_not_in_capsule([&] { sem.acquire(); });
  expect_not_in_capsule([&] { (void)sem.acquire(1ms); });
  expect_not_in_capsule([&] { wg.wait(); });
  expect_not_in_capsule([&] { (void)ch.send(1); });
  expect_not_in_capsule([&] { (void)ch.receive(); });
  CHECK(mutex.try_lock());
  std::unique_lock lock(mutex, std::adopt_lock);
  expect_not_in_capsule([&] { cv.wait(lock); });
  CHECK(lock.owns_lock());  // untouched
  // Nothing was taken by the failed calls.
  CHECK(sem.count() == 1);
  CHECK(ch.size() == 0);
}

// ---- lost wake-ups -----------------------------------------------------------------------

TEST_CASE("sync: a notify between a waiter's enqueue and its suspension is not lost") {
  AEM_FOR_EACH_CORE_COUNT(cores) {
    aem::Runtime rt(aem_test::config_for(cores));
    const int rounds = cores == 1 ? 3000 : 4000;
    rt.run([cores, rounds] {
      const unsigned other = cores > 1 ? 1 : 0;
      // spin_wait waits for `done()` without suspending on another core (so this side acts
      // the moment the other one does), by yielding on a shared one.
      auto spin_wait = [cores](auto&& done) {
        for (unsigned spins = 0; !done(); ++spins) {
          if (cores == 1) aem::this_capsule::yield();
          else if (spins % 1024 == 1023) std::this_thread::yield();  // oversubscribed CPUs
        }
      };
      // CondVar, no predicate: a notify lost after the waiter was dequeued hangs it for good.
      // The notifier acts as soon as the waiter has queued: (0) it is handed the mutex that
      // wait() releases, (1) it spins on try_lock() and gets it the instant wait() releases
      // it, or (2) it calls notify_one() over and over, so the first one lands right after
      // the waiter queued, before it even released the mutex.
      {
        aem::Mutex mutex;
        aem::CondVar cv;
        std::atomic<int> armed{0};
        std::atomic<int> woken{0};
        auto notifier = spawn_on(other, [&] {
          for (int i = 1; i <= rounds; ++i) {
            spin_wait([&] { return armed.load(std::memory_order_acquire) >= i; });
            switch (i % 3) {
              case 0:
                mutex.lock();  // handed over once the waiter is queued on cv
                mutex.unlock();
                cv.notify_one();
                break;
              case 1:
                spin_wait([&] { return mutex.try_lock(); });
                mutex.unlock();
                cv.notify_one();
                break;
              default:
                spin_wait([&] {
                  cv.notify_one();
                  return woken.load(std::memory_order_acquire) >= i;
                });
                break;
            }
          }
        });
        for (int i = 1; i <= rounds; ++i) {
          std::unique_lock lock(mutex);
          armed.store(i, std::memory_order_release);
          cv.wait(lock);
          woken.store(i, std::memory_order_release);
        }
        notifier.join();
      }
      // Semaphore: the release comes the moment the waiter announces its acquire, so it lands
      // before, during or after the waiter's enqueue-then-suspend.
      {
        aem::Semaphore sem;
        std::atomic<int> armed{0};
        auto releaser = spawn_on(other, [&] {
          for (int i = 1; i <= rounds; ++i) {
            spin_wait([&] { return armed.load(std::memory_order_acquire) >= i; });
            sem.release();
          }
        });
        for (int i = 1; i <= rounds; ++i) {
          armed.store(i, std::memory_order_release);
          sem.acquire();
        }
        releaser.join();
        CHECK(sem.count() == 0);
      }
      // Semaphore ping-pong: every acquire races the other side's release.
      {
        aem::Semaphore to_a;
        aem::Semaphore to_b;
        auto b = spawn_on(other, [&] {
          for (int i = 0; i < rounds; ++i) {
            to_b.acquire();
            to_a.release();
          }
        });
        for (int i = 0; i < rounds; ++i) {
          to_b.release();
          to_a.acquire();
        }
        b.join();
        CHECK(to_a.count() == 0);
        CHECK(to_b.count() == 0);
      }
      // WaitGroup and Channel: the other side acts the moment the waiter announces its wait.
      {
        aem::Channel<int> ch(1);
        std::atomic<int> armed{0};
        auto actor = spawn_on(other, [&] {
          for (int i = 1; i <= rounds; ++i) {
            spin_wait([&] { return armed.load(std::memory_order_acquire) >= i; });
            REQUIRE(ch.try_send(int{i}));
          }
        });
        for (int i = 1; i <= rounds; ++i) {
          armed.store(i, std::memory_order_release);
          REQUIRE(ch.receive().value() == i);
        }
        actor.join();
        for (int i = 0; i < rounds / 4; ++i) {
          aem::WaitGroup wg(1);
          REQUIRE(aem::post(other, [&wg] { wg.done(); }));
          wg.wait();
        }
      }
    });
  }
}

TEST_CASE("sync: semaphore timeouts racing releases never lose or duplicate a permit") {
  AEM_FOR_EACH_CORE_COUNT(cores) {
    aem::Runtime rt(aem_test::config_for(cores));
    constexpr int kReleases = 3000;
    constexpr int kWaiters = 3;
    constexpr int kAttempts = 1500;
    aem::Semaphore sem;
    std::atomic<long> acquired{0};
    rt.run([&] {
      std::vector<aem::Capsule<void>> all;
      for (int w = 0; w < kWaiters; ++w) {
        all.push_back(spawn_on(0, [&, w] {
          std::mt19937 rng(static_cast<unsigned>(w) + 1);
          for (int i = 0; i < kAttempts; ++i) {
            if (sem.acquire(std::chrono::microseconds(rng() % 100))) acquired.fetch_add(1);
          }
        }));
      }
      all.push_back(spawn_on(cores > 1 ? 1 : 0, [&] {
        std::mt19937 rng(99);
        for (int i = 0; i < kReleases; ++i) {
          sem.release();
          spin_for(static_cast<std::int64_t>(rng() % 60'000));
          if (i % 8 == 0) aem::this_capsule::yield();
        }
      }));
      for (auto& c : all) c.join();
    });
    CHECK(acquired.load() + static_cast<long>(sem.count()) == kReleases);
  }
}

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

// ---- shutdown ----------------------------------------------------------------------------

TEST_CASE("sync: capsules blocked forever are unwound when the root capsule returns") {
  AEM_FOR_EACH_CORE_COUNT(cores) {
    std::atomic<int> unwound{0};
    std::atomic<int> reached_end{0};
    aem::Channel<int> empty(1);
    aem::Channel<int> full(1);
    aem::Mutex mutex;
    aem::CondVar cv;
    aem::Semaphore sem;
    aem::WaitGroup wg(1);
    {
      aem::Runtime rt(aem_test::config_for(cores));
      rt.run([&, cores] {
        auto detach = [&](unsigned core, auto fn) { spawn_on(core % cores, std::move(fn)).detach(); };
        detach(0, [&] {
          Bump bump{&unwound};
          (void)empty.receive();  // nobody ever sends
          reached_end.fetch_add(1);
        });
        detach(1, [&] {
          Bump bump{&unwound};
          std::lock_guard guard(mutex);  // taken here...
          sem.acquire();                 // ...and held while parked forever
          reached_end.fetch_add(1);
        });
        detach(2, [&] {
          Bump bump{&unwound};
          std::unique_lock lock(mutex);  // waits for the holder above, or gets it at unwind
          cv.wait(lock);
          reached_end.fetch_add(1);
        });
        detach(3, [&] {
          Bump bump{&unwound};
          wg.wait();
          reached_end.fetch_add(1);
        });
        detach(1, [&] {
          Bump bump{&unwound};
          int v = 1;
          while (full.send(std::move(v), 1h)) v = 1;  // the first fills the channel, then blocks
          reached_end.fetch_add(1);
        });
        aem::this_capsule::sleep_for(1ms);  // let them park (not required for correctness)
      });
    }
    CHECK(unwound.load() == 5);
    CHECK(reached_end.load() == 0);
    CHECK(mutex.try_lock());  // the lock_guards released it while unwinding
    mutex.unlock();
  }
}
