// Signals as events (aem::on_signal): the handler gets the signo and the sender; every
// registration of a signal, on any core, gets every instance; ctl disables (queues), enables,
// cancels; signals that cannot be handled this way are refused.
//
// Every test blocks its signals in the calling thread before the runtime starts (RAII below):
// the runtime threads inherit that mask, and a signal that reached a thread leaving it
// unblocked would run its default action and end the test process. The guard drains what is
// still pending before restoring the mask.
#include "support/cores.hpp"
#include "support/event_helpers.hpp"

#include <aem/capsule.hpp>
#include <aem/cross_core.hpp>
#include <aem/event.hpp>
#include <aem/group.hpp>
#include <aem/policy.hpp>
#include <aem/runtime.hpp>
#include <aem/signal.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <csignal>
#include <initializer_list>
#include <pthread.h>
#include <thread>
#include <unistd.h>

using namespace std::chrono_literals;
using aem_test::wait_until;

namespace {

class BlockedSignals {
 public:
  BlockedSignals(std::initializer_list<int> signals) {
    sigemptyset(&set_);
    for (int signo : signals) sigaddset(&set_, signo);
    ::pthread_sigmask(SIG_BLOCK, &set_, &old_);
  }
  ~BlockedSignals() {
    const timespec zero{};
    while (::sigtimedwait(&set_, nullptr, &zero) > 0) {
    }
    ::pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  BlockedSignals(const BlockedSignals&) = delete;
  BlockedSignals& operator=(const BlockedSignals&) = delete;

 private:
  sigset_t set_;
  sigset_t old_;
};

constexpr unsigned kCounts[] = {1, 2};

}  // namespace

TEST_CASE("signals: the handler gets signo and sender, from kill, sigqueue and pthread_kill to any runtime thread") {
  for (unsigned cores : kCounts) {
    CAPTURE(cores);
    BlockedSignals blocked{SIGUSR1};
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([cores] {
      const unsigned home = cores - 1;  // the registration lives on the last core
      auto done = aem::submit(home, [cores] {
        std::atomic<int> got{0};
        aem::SignalInfo seen;
        auto id = aem::on_signal(SIGUSR1, [&](const aem::SignalInfo& info) {
          seen = info;
          got.fetch_add(1);
        });
        REQUIRE(id);
        auto info = aem::ctl(*id).info();
        REQUIRE(info);
        CHECK(info->source == aem::SourceType::signal);
        CHECK(info->core == cores - 1);

        REQUIRE(::kill(::getpid(), SIGUSR1) == 0);
        REQUIRE(wait_until([&] { return got.load() == 1; }));
        CHECK(seen.signo == SIGUSR1);
        CHECK(seen.pid == ::getpid());
        CHECK(seen.uid == ::getuid());
        CHECK(seen.code == SI_USER);

        sigval value{};
        value.sival_int = 42;
        REQUIRE(::sigqueue(::getpid(), SIGUSR1, value) == 0);
        REQUIRE(wait_until([&] { return got.load() == 2; }));
        CHECK(seen.code == SI_QUEUE);
        CHECK(static_cast<int>(seen.value & 0xffffffffu) == 42);

        // Directed at this core's own thread, then at every other runtime thread: each core
        // reads what is pending for its thread and hands it over.
        REQUIRE(::pthread_kill(::pthread_self(), SIGUSR1) == 0);
        REQUIRE(wait_until([&] { return got.load() == 3; }));
        CHECK(seen.code == SI_TKILL);
        int expected = 3;
        for (unsigned core = 0; core + 1 < cores; ++core) {
          auto thread = aem::submit(core, [] { return ::pthread_self(); });
          REQUIRE(thread);
          REQUIRE(::pthread_kill(*thread, SIGUSR1) == 0);
          ++expected;
          REQUIRE(wait_until([&] { return got.load() == expected; }));
          CHECK(seen.signo == SIGUSR1);
          CHECK(seen.pid == ::getpid());
        }
        auto after = aem::ctl(*id).info();
        REQUIRE(after);
        CHECK(after->delivered == static_cast<std::uint64_t>(expected));
        CHECK(aem::ctl(*id).cancel());
      });
      REQUIRE(done);
    });
  }
}

TEST_CASE("signals: every registration gets every instance: cancel stops delivery") {
  for (unsigned cores : kCounts) {
    CAPTURE(cores);
    BlockedSignals blocked{SIGUSR1};
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([cores] {
      std::atomic<int> a{0}, b{0}, c{0};
      auto id_a = aem::on_signal(SIGUSR1, [&] { a.fetch_add(1); });  // core 0
      REQUIRE(id_a);
      auto remote = aem::submit(cores - 1, [&] {
        auto id_b = aem::on_signal(SIGUSR1, [&](const aem::SignalInfo& info) {
          if (info.signo == SIGUSR1) b.fetch_add(1);
        });
        auto id_c = aem::on_signal(SIGUSR1, [&] { c.fetch_add(1); }, {.exec = aem::Executor::keepalive});
        REQUIRE(id_b);
        REQUIRE(id_c);
        return std::pair{*id_b, *id_c};
      });
      REQUIRE(remote);
      const auto [id_b, id_c] = *remote;
      REQUIRE(::kill(::getpid(), SIGUSR1) == 0);
      REQUIRE(wait_until([&] { return a.load() == 1 && b.load() == 1 && c.load() == 1; }));

      REQUIRE(aem::cancel(id_b));  // from another core's capsule when cores == 2
      CHECK(aem::ctl(id_b).info().error() == aem::make_error_code(aem::errc::stale_event_id));
      REQUIRE(::kill(::getpid(), SIGUSR1) == 0);
      REQUIRE(wait_until([&] { return a.load() == 2 && c.load() == 2; }));
      // b's core got the instance too (c has it): b, cancelled, is not called.
      CHECK(b.load() == 1);
      CHECK(aem::cancel(*id_a));
      CHECK(aem::cancel(id_c));
    });
  }
}

TEST_CASE("signals: disable queues instances up to the bound, enable delivers them, the rest is reported lost") {
  for (unsigned cores : kCounts) {
    CAPTURE(cores);
    BlockedSignals blocked{SIGUSR2};
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([cores] {
      auto done = aem::submit(cores - 1, [] {
        std::atomic<int> got{0};
        std::atomic<std::uint64_t> lost{0};
        auto id = aem::on_signal(SIGUSR2, [&] { got.fetch_add(1); },
                                 {.queue_bound = 1, .on_lost = [&](aem::Lost l) { lost.fetch_add(l.count); }});
        REQUIRE(id);
        REQUIRE(aem::ctl(*id).disable());
        REQUIRE(::kill(::getpid(), SIGUSR2) == 0);
        REQUIRE(wait_until([&] { return aem::ctl(*id).info()->activated == 1; }));
        auto info = aem::ctl(*id).info();
        REQUIRE(info);
        CHECK(info->state == aem::EventState::disabled);
        CHECK(info->queued == 1);
        CHECK(info->delivered == 0);
        CHECK(got.load() == 0);
        // A second instance finds the queue at its bound: signals cannot wait, it is dropped.
        REQUIRE(::kill(::getpid(), SIGUSR2) == 0);
        REQUIRE(wait_until([&] { return aem::ctl(*id).info()->activated == 2; }));
        CHECK(aem::ctl(*id).info()->lost == 1);
        REQUIRE(aem::ctl(*id).enable());
        REQUIRE(wait_until([&] { return got.load() == 1 && lost.load() == 1; }));
        CHECK(aem::ctl(*id).info()->delivered == 1);
        CHECK(aem::cancel(*id));
      });
      REQUIRE(done);
    });
  }
}

TEST_CASE("signals: a signal directed at a non-runtime thread stays pending there") {
  BlockedSignals blocked{SIGUSR2};
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([] {
    std::atomic<int> got{0};
    auto id = aem::on_signal(SIGUSR2, [&] { got.fetch_add(1); });
    REQUIRE(id);
    std::atomic<bool> sent{false};
    std::atomic<int> waited{-1};
    std::thread plain([&] {  // inherits the blocked mask from this runtime thread
      while (!sent.load()) std::this_thread::sleep_for(1ms);
      sigset_t set;
      sigemptyset(&set);
      sigaddset(&set, SIGUSR2);
      siginfo_t info{};
      const timespec limit{10, 0};
      waited = ::sigtimedwait(&set, &info, &limit);
    });
    REQUIRE(::pthread_kill(plain.native_handle(), SIGUSR2) == 0);
    // A process-directed one reaches the registration; the directed one stays with the thread.
    REQUIRE(::kill(::getpid(), SIGUSR2) == 0);
    REQUIRE(wait_until([&] { return got.load() == 1; }));
    sent = true;
    REQUIRE(wait_until([&] { return waited.load() != -1; }));
    plain.join();
    // Two instances, one each: the thread's could only be read by the thread itself. (Linux
    // may hand the thread either siginfo of a standard signal, so the code is not checked.)
    CHECK(waited.load() == SIGUSR2);
    CHECK(got.load() == 1);
    CHECK(aem::cancel(*id));
  });
}

TEST_CASE("signals: signals that cannot be events are refused, and on_signal needs a capsule") {
  auto refused = [](int signo) {
    auto id = aem::on_signal(signo, [] {});
    return !id && id.error() == aem::make_error_code(aem::errc::invalid_argument);
  };
  BlockedSignals blocked{SIGUSR1};
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([&] {
    for (int signo : {SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, 0, -1, 65, 1000, SIGRTMIN - 1}) {
      CAPTURE(signo);
      CHECK(refused(signo));
    }
    auto bad_bound = aem::on_signal(SIGUSR1, [] {}, {.queue_bound = 0});
    CHECK(bad_bound.error() == aem::make_error_code(aem::errc::invalid_argument));
  });
  auto outside = aem::on_signal(SIGUSR1, [] {});
  REQUIRE_FALSE(outside);
  CHECK(outside.error() == aem::make_error_code(aem::errc::not_in_capsule));
}

// The core's signal reader belongs to the runtime, not to the group or policy of the capsule
// that made the first registration: cancelling that group ends its registration only, and a
// policy that forbids inline handlers and socket sources still allows on_signal.
TEST_CASE("signals: the reader is outside event groups and policy") {
  BlockedSignals blocked{SIGUSR2};
  aem::Config config = aem_test::config_for(1);
  config.policy.allowed_executors = aem::mask_of(aem::Executor::fresh_capsule);
  config.policy.allowed_sources = aem::mask_of(aem::SourceType::signal);
  aem::Runtime rt(config);
  rt.run([] {
    auto group = aem::EventGroup::create();
    REQUIRE(group);
    std::atomic<int> in_group{0}, outside{0};
    auto member = aem::spawn(
        [&] {
          auto id = aem::on_signal(SIGUSR2, [&] { in_group.fetch_add(1); });
          REQUIRE(id);
        },
        {.group = *group});
    REQUIRE(member);
    member->join();
    auto id = aem::on_signal(SIGUSR2, [&] { outside.fetch_add(1); });
    REQUIRE(id);
    REQUIRE(::kill(::getpid(), SIGUSR2) == 0);
    REQUIRE(wait_until([&] { return in_group.load() == 1 && outside.load() == 1; }));

    auto cancelled = group->cancel();
    REQUIRE(cancelled);
    CHECK(*cancelled == 1);
    REQUIRE(::kill(::getpid(), SIGUSR2) == 0);
    REQUIRE(wait_until([&] { return outside.load() == 2; }));
    CHECK(in_group.load() == 1);
    // A user event is not among the allowed sources: refused, the signal registration unharmed.
    auto refused = aem::on_event([] {});
    REQUIRE_FALSE(refused);
    CHECK(refused.error() == aem::errc::policy_limit);
    CHECK(aem::ctl(*id).info());
  });
}

TEST_CASE("signals: an instance that arrives while the first registration is being set up is delivered to it") {
  // The first on_signal prepares every core (each blocks the signal) before it registers. An
  // instance sent in between stays pending in the kernel until the registration reads it; none
  // is read and dropped for want of a taker. Core 1 is held busy so that the registration on
  // core 0 waits for core 1's preparation, and a second capsule of core 0 raises the signal then.
  BlockedSignals blocked{SIGUSR2};
  aem::Runtime rt(aem_test::config_for(2));
  rt.run([] {
    std::atomic<bool> hold_core1{true};
    std::atomic<bool> registering{false};
    std::atomic<bool> raised{false};
    std::atomic<int> delivered{0};
    auto busy = aem::spawn([&] {
      while (hold_core1.load()) {
      }  // no suspension: core 1 runs nothing else, its preparation for SIGUSR2 included
    }, {.core = 1});
    REQUIRE(busy);
    auto sender = aem::spawn([&] {
      while (!registering.load()) aem::this_capsule::yield();
      REQUIRE(::raise(SIGUSR2) == 0);  // to core 0's thread, which blocks SIGUSR2 by now
      raised.store(true);
      aem::this_capsule::sleep_for(20ms);  // core 0 polls its reader meanwhile
      hold_core1.store(false);
    });
    REQUIRE(sender);
    registering.store(true);
    auto id = aem::on_signal(SIGUSR2, [&] { delivered.fetch_add(1); });
    REQUIRE(id);
    CHECK(raised.load());  // the instance was sent while the registration was being set up
    REQUIRE(wait_until([&] { return delivered.load() == 1; }));
    sender->join();
    busy->join();
    CHECK(delivered.load() == 1);
    CHECK(aem::cancel(*id));
  });
}
