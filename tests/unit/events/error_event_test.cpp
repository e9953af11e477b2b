// Subsystem errors as events (aem::on_error): an exhausted arena, an accept that runs out of
// descriptors and an overflowing completion queue each reach the registrations of every core,
// with the subsystem, the core it happened on and a running count; the application's own
// callbacks keep working beside them.
#include "support/child_process.hpp"
#include "support/cores.hpp"
#include "support/event_helpers.hpp"
#include "support/net_helpers.hpp"

#include "runtime/sched/core.hpp"

#include <aem/capsule.hpp>
#include <aem/core_arena.hpp>
#include <aem/cross_core.hpp>
#include <aem/error_event.hpp>
#include <aem/event.hpp>
#include <aem/fd_io.hpp>
#include <aem/net.hpp>
#include <aem/net/events.hpp>
#include <aem/runtime.hpp>

#include <doctest/doctest.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <fcntl.h>
#include <memory>
#include <mutex>
#include <string_view>
#include <sys/resource.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;
using aem_test::wait_until;

namespace {

// Seen collects the errors a registration heard (its handler may run on its own core only, but
// the test body reads from another).
struct Seen {
  std::mutex mutex;
  std::vector<aem::SubsystemError> errors;
  void add(const aem::SubsystemError& e) {
    std::lock_guard lock(mutex);
    errors.push_back(e);
  }
  std::vector<aem::SubsystemError> of(aem::Subsystem subsystem) {
    std::lock_guard lock(mutex);
    std::vector<aem::SubsystemError> out;
    for (const auto& e : errors) {
      if (e.subsystem == subsystem) out.push_back(e);
    }
    return out;
  }
};

}  // namespace

TEST_CASE("error events: arena exhaustion under the fallback policy reaches registrations on every core") {
  for (unsigned cores : {1u, 2u}) {
    CAPTURE(cores);
    aem::Config config = aem_test::config_for(cores);
    config.arena.capacity = std::size_t{64} << 10;
    config.arena.on_exhaustion = aem::ExhaustionPolicy::fallback;
    std::atomic<int> pressure_calls{0};
    config.arena.on_pressure = [&](const aem::MemoryPressure&) { pressure_calls.fetch_add(1); };
    aem::Runtime rt(config);
    rt.run([&] {
      Seen here, there;
      auto local = aem::on_error([&](const aem::SubsystemError& e) { here.add(e); });
      REQUIRE(local);
      auto remote = aem::submit(cores - 1, [&] {
        return aem::on_error([&](const aem::SubsystemError& e) { there.add(e); }, {.priority = aem::Priority::high});
      });
      REQUIRE(remote);
      REQUIRE(*remote);
      CHECK(aem::ctl(**remote).info()->source == aem::SourceType::error);
      // Far more than the region on core 0: the arena falls back to the heap and says so.
      std::vector<aem::EventData> held;
      for (int i = 0; i < 40; ++i) {
        auto data = aem::this_core::allocate_data(4096);
        REQUIRE(data);
        held.push_back(std::move(*data));
      }
      auto oversized = aem::this_core::allocate_data(std::size_t{128} << 10);
      REQUIRE(oversized);
      REQUIRE(wait_until([&] {
        auto a = here.of(aem::Subsystem::arena);
        auto b = there.of(aem::Subsystem::arena);
        return !a.empty() && !b.empty() && a.back().code.value() == EFBIG && b.back().code.value() == EFBIG;
      }));
      for (Seen* seen : {&here, &there}) {
        const auto errors = seen->of(aem::Subsystem::arena);
        std::uint64_t last = 0;
        for (const auto& e : errors) {
          CHECK(e.core == 0u);
          CHECK(&e.code.category() == &std::generic_category());
          CHECK((e.code.value() == ENOMEM || e.code.value() == EFBIG));
          CHECK(e.count > last);  // in order; gaps only where a burst was coalesced
          CHECK(std::string_view(e.detail).find("arena") == 0);
          last = e.count;
        }
        CHECK(errors.front().code.value() == ENOMEM);
      }
      CHECK(pressure_calls.load() > 0);  // the application's callback still runs
      held.clear();
      CHECK(aem::cancel(*local));
      CHECK(aem::cancel(**remote));
    });
  }
}

TEST_CASE("error events: a cancelled or disabled registration hears nothing at once: enable delivers") {
  aem::Config config = aem_test::config_for(1);
  config.arena.capacity = std::size_t{64} << 10;
  aem::Runtime rt(config);
  rt.run([] {
    Seen seen;
    auto id = aem::on_error([&](const aem::SubsystemError& e) { seen.add(e); }, {.queue_bound = 1});
    REQUIRE(id);
    REQUIRE(aem::ctl(*id).disable());
    auto oversized = aem::this_core::allocate_data(std::size_t{128} << 10);
    REQUIRE(oversized);
    REQUIRE(wait_until([&] { return aem::ctl(*id).info()->activated >= 1; }));
    CHECK(aem::ctl(*id).info()->queued == 1);
    CHECK(seen.of(aem::Subsystem::arena).empty());
    REQUIRE(aem::ctl(*id).enable());
    REQUIRE(wait_until([&] { return !seen.of(aem::Subsystem::arena).empty(); }));
    CHECK(seen.of(aem::Subsystem::arena).front().code.value() == EFBIG);
    CHECK(aem::cancel(*id));
    CHECK(aem::ctl(*id).info().error() == aem::make_error_code(aem::errc::stale_event_id));
  });
  auto outside = aem::on_error([] {});
  REQUIRE_FALSE(outside);
  CHECK(outside.error() == aem::make_error_code(aem::errc::not_in_capsule));
}

// EMFILE on accept: in a child, which lowers RLIMIT_NOFILE so that no descriptor is left.
TEST_CASE("error events: EMFILE on accept raises an accept error event") {
  const auto result = aem_test::run_in_child([] {
    aem::Runtime rt(aem_test::config_for(1));
    return rt.run([]() -> int {
      aem::TcpListener listener = aem_test::loopback_listener();
      auto address = listener.local_address();
      if (!address) return 10;
      std::atomic<int> accept_errors{0};
      std::atomic<int> wrong{0};
      std::atomic<std::uint64_t> count{0};
      // Registered before the limit drops: its reader needs a descriptor.
      auto errors = aem::on_error([&](const aem::SubsystemError& e) {
        if (e.subsystem != aem::Subsystem::accept) return;
        // Compared without a virtual call: UBSan's vptr check fails while fds are exhausted.
        if (e.code.value() != EMFILE || &e.code.category() != &std::generic_category() || e.core != 0) ++wrong;
        count = e.count;
        ++accept_errors;
      });
      if (!errors) return 11;
      const int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (client < 0) return 12;
      rlimit original{};
      ::getrlimit(RLIMIT_NOFILE, &original);
      int lowest_free = 0;
      while (::fcntl(lowest_free, F_GETFD) != -1) ++lowest_free;
      rlimit lowered = original;
      lowered.rlim_cur = static_cast<rlim_t>(lowest_free);  // no new descriptor fits
      if (::setrlimit(RLIMIT_NOFILE, &lowered) != 0) return 13;
      std::atomic<int> accepted{0};
      auto id = aem::on_accept(listener, [&](aem::TcpStream) { ++accepted; }, {.on_error = [](std::error_code) {}});
      if (!id) return 14;
      (void)::connect(client, address->data(), address->size());
      const bool heard = wait_until([&] { return accept_errors.load() > 0; });
      ::setrlimit(RLIMIT_NOFILE, &original);
      const bool served = wait_until([&] { return accepted.load() == 1; });  // after the back-off
      const aem::SocketEventStats stats = aem::this_core::socket_event_stats();
      std::printf("heard=%d wrong=%d count=%llu backoffs=%llu accepted=%d\n", accept_errors.load(), wrong.load(),
                  static_cast<unsigned long long>(count.load()), static_cast<unsigned long long>(stats.accept_backoffs),
                  accepted.load());
      std::fflush(stdout);
      ::close(client);
      (void)aem::cancel(*id);
      (void)aem::cancel(*errors);
      if (!heard) return 1;
      if (wrong.load() != 0) return 2;
      if (count.load() == 0 || count.load() > stats.accept_backoffs) return 3;
      if (!served) return 4;
      return 0;
    });
  });
  INFO(result.output);
  CHECK(result.exit_code == 0);
}

TEST_CASE("error events: a completion-queue overflow raises a completion_queue error event") {
  aem::Config config = aem_test::config_for(1);
  config.ring_entries = 2;
  config.cq_entries = 2;
  config.capsules_per_core = 32;
  aem::Runtime rt(config);
  constexpr int kReaders = 256;
  std::vector<std::array<int, 2>> pipes(kReaders);
  for (auto& p : pipes) REQUIRE(::pipe2(p.data(), O_CLOEXEC) == 0);
  rt.run([&] {
    aem::detail::Backend& backend = aem::detail::Core::current_core()->backend();
    if (std::string_view(backend.name()) != "io_uring" || !backend.features().cq_nodrop) {
      MESSAGE("not io_uring with FEAT_NODROP here (no completion queue to overflow): skipped");
      return;
    }
    Seen seen;
    auto id = aem::on_error([&](const aem::SubsystemError& e) { seen.add(e); });
    REQUIRE(id);
    int waiting = 0;
    std::vector<aem::Capsule<bool>> readers;
    for (int i = 0; i < kReaders; ++i) {
      auto reader = aem::spawn([&, i] {
        std::array<std::byte, 1> byte{};
        ++waiting;
        const aem::Result<std::size_t> got = aem::read(pipes[i][0], byte);
        return got && *got == 1;
      });
      REQUIRE(reader);
      readers.push_back(std::move(*reader));
    }
    while (waiting < kReaders) aem::this_capsule::yield();
    for (int i = 0; i < kReaders; ++i) REQUIRE(::write(pipes[i][1], "x", 1) == 1);
    int completed = 0;
    for (auto& reader : readers) completed += reader.join() ? 1 : 0;
    CHECK(completed == kReaders);
    const std::uint64_t overflows = backend.stats().cq_overflows;
    REQUIRE(overflows > 0);
    REQUIRE(wait_until([&] { return !seen.of(aem::Subsystem::completion_queue).empty(); }));
    for (const auto& e : seen.of(aem::Subsystem::completion_queue)) {
      CHECK(e.core == 0u);
      CHECK(e.code == std::error_code(EOVERFLOW, std::generic_category()));
      CHECK(e.count >= 1);
      CHECK(e.count <= backend.stats().cq_overflows);
    }
    CHECK(aem::cancel(*id));
  });
  for (auto& p : pipes) {
    ::close(p[0]);
    ::close(p[1]);
  }
}
