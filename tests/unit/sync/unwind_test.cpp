// Capsules blocked forever in a fiber sync primitive are unwound (destructors run, locks
// released) when the root capsule returns.
#include "support/cores.hpp"
#include "support/sync_helpers.hpp"
#include "support/unwind_helpers.hpp"

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
#include <utility>

using namespace std::chrono_literals;
using namespace aem_test;  // spawn_on

using Bump = aem_test::CountsDestruction;  // proof that a capsule was unwound

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
