// The fiber sync primitives used from a plain thread (not a capsule): it may notify, release,
// signal done, send without blocking and close for capsules; every blocking call throws
// not_in_capsule and takes nothing.
#include "support/cores.hpp"
#include "support/sync_helpers.hpp"

#include <aem/capsule.hpp>
#include <aem/channel.hpp>
#include <aem/condvar.hpp>
#include <aem/mutex.hpp>
#include <aem/runtime.hpp>
#include <aem/semaphore.hpp>
#include <aem/wait_group.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <system_error>
#include <thread>

using namespace std::chrono_literals;
using namespace aem_test;  // is, spawn_on

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
