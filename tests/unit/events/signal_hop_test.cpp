// Signals: an instance read on one core reaches the registrations of another core
// even when that core has no capsule to spare, or the runtime's policy allows no more capsules.
#include "support/cores.hpp"
#include "support/event_helpers.hpp"

#include <aem/capsule.hpp>
#include <aem/cross_core.hpp>
#include <aem/event.hpp>
#include <aem/runtime.hpp>
#include <aem/signal.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <csignal>
#include <pthread.h>

using namespace std::chrono_literals;
using aem_test::wait_until;

namespace {

class BlockedSignal {
 public:
  explicit BlockedSignal(int signo) {
    sigemptyset(&set_);
    sigaddset(&set_, signo);
    ::pthread_sigmask(SIG_BLOCK, &set_, &old_);
  }
  ~BlockedSignal() {
    const timespec zero{};
    while (::sigtimedwait(&set_, nullptr, &zero) > 0) {
    }
    ::pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  BlockedSignal(const BlockedSignal&) = delete;
  BlockedSignal& operator=(const BlockedSignal&) = delete;

 private:
  sigset_t set_;
  sigset_t old_;
};

// signal_core_one_busy registers on core 1, keeps `busy` capsules of core 1 asleep, sends the
// signal to core 0's thread (core 0 reads it and hands it to core 1) and returns how many
// activations core 1's registration got once its capsules are free again.
int signal_core_one_busy(int busy) {
  std::atomic<int> got{0};
  auto id = aem::submit(1, [&got] { return aem::on_signal(SIGUSR2, [&got] { got.fetch_add(1); }); });
  REQUIRE(id);
  REQUIRE(*id);
  std::atomic<int> asleep{0};
  std::atomic<int> woke{0};
  for (int i = 0; i < busy; ++i) {
    REQUIRE(aem::post(1, [&] {
      asleep.fetch_add(1);
      aem::this_capsule::sleep_for(100ms);
      woke.fetch_add(1);
    }));
  }
  REQUIRE(wait_until([&] { return asleep.load() == busy; }));
  REQUIRE(::pthread_kill(::pthread_self(), SIGUSR2) == 0);  // this thread is core 0
  REQUIRE(wait_until([&] { return woke.load() == busy; }));
  (void)wait_until([&] { return got.load() == 1; }, 3s);
  CHECK(aem::cancel(**id));
  return got.load();
}

}  // namespace

TEST_CASE("signals: an instance reaches another core's registration while that core has no free capsule") {
  BlockedSignal blocked(SIGUSR2);
  aem::Config config = aem_test::config_for(2);
  config.capsules_per_core = 2;
  config.max_capsules = 2;
  aem::Runtime rt(config);
  rt.run([] { CHECK(signal_core_one_busy(2) == 1); });
}

TEST_CASE("signals: the runtime's max_capsules does not keep an instance from another core's registration") {
  BlockedSignal blocked(SIGUSR2);
  aem::Config config = aem_test::config_for(2);
  config.policy.max_capsules = 1;
  aem::Runtime rt(config);
  rt.run([] { CHECK(signal_core_one_busy(1) == 1); });
}
