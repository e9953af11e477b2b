// accept_backoff_test.cpp — a blocking-style accept loop keeps going when the process runs out
// of descriptors: accept pauses and retries instead of returning EMFILE, counts the pause and
// raises it as an on_error event, and serves every connection once descriptors are free again.
#include "support/child_process.hpp"
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
      // The client sockets are made on a plain thread before the limit drops; they connect after.
      std::atomic<bool> created{false};
      std::atomic<bool> go{false};
      std::atomic<int> echoed{0};
      std::atomic<bool> finished{false};
      std::thread clients([&] {
        std::vector<int> fds;
        for (int i = 0; i < kClients; ++i) {
          int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
          timeval timeout{20, 0};
          ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
          fds.push_back(fd);
        }
        created = true;
        while (!go) std::this_thread::sleep_for(1ms);
        for (int fd : fds) (void)::connect(fd, address->data(), address->size());
        for (int fd : fds) (void)::write(fd, "x", 1);
        for (int fd : fds) {
          char c;
          if (::read(fd, &c, 1) == 1 && c == 'x') ++echoed;
        }
        // Closed only now: a client descriptor closed earlier would free a number below the
        // limit for the server's next accept, and the shortage might never come.
        for (int fd : fds) ::close(fd);
        finished = true;
      });
      while (!created) aem::this_capsule::sleep_for(1ms);
      // A pause frees the held connections, so the next try finds descriptors again.
      auto on_error = aem::on_error([&](const aem::SubsystemError& e) {
        if (e.subsystem == aem::Subsystem::accept && e.code.value() == EMFILE) ++error_events;
        held.clear();
      });
      if (!on_error) return 11;
      rlimit original{};
      ::getrlimit(RLIMIT_NOFILE, &original);
      // New descriptors take the lowest free numbers below the limit: put the limit just past
      // the third free number (descriptors above it that exist stay usable).
      int free_seen = 0;
      int limit = 0;
      while (free_seen < 3) {
        if (::fcntl(limit, F_GETFD) == -1) ++free_seen;
        ++limit;
      }
      rlimit lowered = original;
      lowered.rlim_cur = static_cast<rlim_t>(limit);
      if (::setrlimit(RLIMIT_NOFILE, &lowered) != 0) return 12;
      go = true;
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
      while (!finished) aem::this_capsule::sleep_for(1ms);  // joining would block the core
      clients.join();
      ::setrlimit(RLIMIT_NOFILE, &original);
      held.clear();
      auto metrics = aem::this_core::metrics();
      const unsigned long long backoffs = metrics ? metrics->accept_backoffs : 0;
      std::printf("served=%d echoed=%d accept_errors=%d error_events=%d backoffs=%llu\n", served, echoed.load(),
                  accept_errors, error_events, backoffs);
      std::fflush(stdout);
      (void)aem::cancel(*on_error);
      if (accept_errors != 0) return 1;
      if (served != kClients || echoed.load() != kClients) return 2;
      if (backoffs == 0 || error_events == 0) return 3;
      return 0;
    });
  });
  INFO(result.output);
  CHECK(result.exit_code == 0);
}
