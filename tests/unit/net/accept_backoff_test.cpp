// accept_backoff_test.cpp — a blocking-style accept loop keeps going when the process runs out
// of descriptors: accept pauses and retries instead of returning EMFILE, counts the pause and
// raises it as an on_error event, and serves every connection once descriptors are free again.
#include "support/child_process.hpp"
#include "support/fd_shortage.hpp"
#include "support/cores.hpp"
#include "support/net_helpers.hpp"

#include <aem/capsule.hpp>
#include <aem/error_event.hpp>
#include <aem/metrics.hpp>
#include <aem/net.hpp>
#include <aem/runtime.hpp>

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

// In a child: it lowers RLIMIT_NOFILE so that only a few descriptors are left.
TEST_CASE("net accept: a blocking accept backs off on EMFILE, reports it, and serves every connection") {
  const auto result = aem_test::run_in_child([] {
    aem::Runtime rt(aem_test::config_for(1));
    return rt.run([]() -> int {
      aem::TcpListener listener = aem_test::loopback_listener();
      auto address = listener.local_address();
      if (!address) return 10;
      constexpr int kClients = 32;
      std::vector<aem::TcpStream> held;
      int served = 0;
      int error_events = 0;
      // The clients are made before the limit drops; they connect after it.
      aem_test::OneByteClients clients(*address, kClients);
      // A pause frees the held connections, so the next try finds descriptors again.
      auto on_error = aem::on_error([&](const aem::SubsystemError& e) {
        if (e.subsystem == aem::Subsystem::accept && e.code.value() == EMFILE) ++error_events;
        held.clear();
      });
      if (!on_error) return 11;
      bool lowered = false;
      const rlimit original = aem_test::leave_free_descriptors(3, lowered);
      if (!lowered) return 12;
      clients.go();
      int accept_errors = 0;
      for (int i = 0; i < kClients; ++i) {
        auto stream = listener.accept(20s);
        if (!stream) {
          ++accept_errors;
          std::printf("accept: %s\n", stream.error().message().c_str());
          break;
        }
        std::byte one[1];
        if (stream->read_exact(one, 10s) && stream->write_all(one, 10s)) ++served;
        held.push_back(std::move(*stream));  // keeps its descriptor until a pause frees them
      }
      const int echoed = clients.wait_finished();
      ::setrlimit(RLIMIT_NOFILE, &original);
      held.clear();
      auto metrics = aem::this_core::metrics();
      const unsigned long long backoffs = metrics ? metrics->accept_backoffs : 0;
      std::printf("served=%d echoed=%d accept_errors=%d error_events=%d backoffs=%llu\n", served, echoed,
                  accept_errors, error_events, backoffs);
      std::fflush(stdout);
      (void)aem::cancel(*on_error);
      if (accept_errors != 0) return 1;
      if (served != kClients || echoed != kClients) return 2;
      if (backoffs == 0 || error_events == 0) return 3;
      return 0;
    });
  });
  INFO(result.output);
  CHECK(result.exit_code == 0);
}
