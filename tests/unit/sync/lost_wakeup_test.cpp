// Lost wake-ups in every fiber sync primitive: the other side acts the moment a waiter
// announces its wait, so the notify, release, done or send lands before, during or after the
// waiter's enqueue-then-suspend. A lost wake-up shows up as a hang (ctest's 300 s timeout).
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
#include <mutex>
#include <thread>

using namespace aem_test;  // spawn_on

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
