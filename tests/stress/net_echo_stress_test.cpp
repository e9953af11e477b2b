#include "support/net_helpers.hpp"

#include <aem/capsule.hpp>
#include <aem/fd_io.hpp>
#include <aem/net.hpp>
#include <aem/runtime.hpp>
#include <aem/semaphore.hpp>
#include <aem/wait_group.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace std::chrono_literals;

namespace {

constexpr std::size_t kWanted = 10'000;
// Descriptors a process needs besides its connections: rings, eventfds, stdio, pipes, test
// binary files.
constexpr std::size_t kSpareFds = 128;
constexpr std::size_t kMaxPayload = 16 * 1024;  // below the default socket buffers: write then read
constexpr auto kPatience = 120s;                // a generous bound, for slow sanitizer builds

// ClientSummary is what the client process reports through a pipe.
struct ClientSummary {
  std::size_t connected = 0;
  std::size_t verified = 0;  // echo complete and checksum equal
  std::size_t bytes = 0;
  int first_error = 0;       // the value of the first error code seen, for the message
};

aem::Config stress_config() {
  aem::Config config;
  config.cores = 2;
  config.capsules_per_core = 256;
  config.idle_spin = std::chrono::microseconds(0);
  return config;
}

// raise_fd_limit lifts RLIMIT_NOFILE to its hard limit and returns how many connections each
// process can hold.
std::size_t raise_fd_limit() {
  rlimit limit{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &limit) == 0);
  limit.rlim_cur = limit.rlim_max;
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &limit) == 0);
  const std::size_t usable = limit.rlim_cur > kSpareFds ? limit.rlim_cur - kSpareFds : 0;
  return std::min(kWanted, usable);
}

// ClientCounters are the client process's tallies, shared by its capsules.
struct ClientCounters {
  std::atomic<std::size_t> connected{0};
  std::atomic<std::size_t> verified{0};
  std::atomic<std::size_t> bytes{0};
  std::atomic<int> first_error{0};

  void note(std::error_code error) {
    int expected = 0;
    first_error.compare_exchange_strong(expected, error.value());
  }
};

// one_client opens connection `id`, waits until every client holds its connection, sends a
// payload that depends on `id`, half-closes and checks that the echo matches.
void one_client(std::size_t id, const aem::SocketAddress& server, aem::Semaphore& connecting, aem::WaitGroup& all_open,
                ClientCounters& counters) {
  auto note = [&](std::error_code error) { counters.note(error); };
  connecting.acquire();  // bound the SYNs in flight, so few hit a full accept queue
  auto stream = aem::TcpStream::connect(server, kPatience);
  connecting.release();
  all_open.done();
  if (!stream) return note(stream.error());
  counters.connected.fetch_add(1);
  if (!all_open.wait(kPatience)) return;  // every connection is open at once from here on
  const std::vector<std::byte> payload = aem_test::pattern(1 + (id * 7919) % kMaxPayload, id);
  if (auto sent = stream->write_all(payload, kPatience); !sent) return note(sent.error());
  if (auto closed = stream->shutdown(aem::Shutdown::write); !closed) return note(closed.error());
  std::vector<std::byte> echoed(payload.size() + 1);  // one spare byte: a longer echo shows
  std::size_t got = 0;
  for (;;) {
    auto n = stream->read(std::span(echoed).subspan(std::min(got, payload.size())), kPatience);
    if (!n) return note(n.error());
    if (*n == 0) break;
    got += *n;
    if (got > payload.size()) break;
  }
  if (got == payload.size() && aem_test::checksum(std::span(echoed).first(got)) == aem_test::checksum(payload)) {
    counters.verified.fetch_add(1);
    counters.bytes.fetch_add(got);
  }
}

// run_clients is the child process: `count` concurrent connections to `server`.
ClientSummary run_clients(const aem::SocketAddress& server, std::size_t count) {
  ClientCounters counters;
  aem::Runtime rt(stress_config());
  rt.run([&] {
    aem::Semaphore connecting(256);
    aem::WaitGroup all_open(static_cast<std::int64_t>(count));
    aem::WaitGroup finished(static_cast<std::int64_t>(count));
    for (std::size_t id = 0; id < count; ++id) {
      auto client = aem::spawn(
          [&, id] {
            one_client(id, server, connecting, all_open, counters);
            finished.done();
          },
          {.core = static_cast<unsigned>(id % 2)});
      if (!client) {
        counters.note(client.error());
        all_open.done();
        finished.done();
        continue;
      }
      client->detach();
    }
    (void)finished.wait(kPatience * 2);
  });
  ClientSummary summary;
  summary.connected = counters.connected.load();
  summary.verified = counters.verified.load();
  summary.bytes = counters.bytes.load();
  summary.first_error = counters.first_error.load();
  return summary;
}

}  // namespace

TEST_CASE("net stress: ten thousand concurrent connections echo checksummed data and lose nothing") {
  const std::size_t count = raise_fd_limit();
  if (count < kWanted) {
    MESSAGE("RLIMIT_NOFILE's hard limit allows " << count + kSpareFds << " descriptors per process: scaled down to "
                                                 << count << " connections");
  }
  REQUIRE(count > 0);
  // Each process holds one end of every connection: the clients run in a forked child, made
  // before any runtime thread exists.
  aem::TcpListener listener = aem_test::loopback_listener({.backlog = 4096});
  const aem::SocketAddress address = listener.local_address().value();
  int report[2];
  REQUIRE(::pipe2(report, O_CLOEXEC) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::close(report[0]);
    (void)listener.close();
    const ClientSummary summary = run_clients(address, count);
    const bool sent = ::write(report[1], &summary, sizeof summary) == static_cast<ssize_t>(sizeof summary);
    std::_Exit(sent ? 0 : 1);
  }
  ::close(report[1]);

  std::atomic<std::size_t> accepted{0};
  std::atomic<std::size_t> echoed_bytes{0};
  std::atomic<std::size_t> echo_failures{0};
  ClientSummary summary;
  bool reported = false;
  aem::Runtime rt(stress_config());
  rt.run([&] {
    auto acceptor = aem::spawn([&] {
      for (unsigned next = 0;; ++next) {
        auto stream = listener.accept();
        if (!stream) return stream.error();
        accepted.fetch_add(1);
        auto echo = aem::spawn(
            [&, s = std::move(*stream)]() mutable {
              auto n = aem_test::echo_until_end(s, kPatience);
              if (n) echoed_bytes.fetch_add(*n);
              else echo_failures.fetch_add(1);
            },
            {.core = next % 2});
        if (!echo) echo_failures.fetch_add(1);
        else echo->detach();
      }
    });
    REQUIRE(acceptor);
    // The client's report arrives when it is done; reading it suspends only this capsule.
    std::span<std::byte> rest(reinterpret_cast<std::byte*>(&summary), sizeof summary);
    while (!rest.empty()) {
      auto n = aem::read(report[0], rest);
      if (!n || *n == 0) break;
      rest = rest.subspan(*n);
    }
    reported = rest.empty();
    CHECK(listener.close());  // ends the accept loop
    CHECK(acceptor->join() == aem::errc::cancelled);
  });
  ::close(report[0]);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status));
  REQUIRE(reported);
  CAPTURE(summary.first_error);
  CHECK(summary.connected == count);
  CHECK(summary.verified == count);
  CHECK(accepted.load() == count);
  CHECK(echo_failures.load() == 0);
  CHECK(echoed_bytes.load() == summary.bytes);
}
