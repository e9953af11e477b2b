#include "support/child_process.hpp"
#include "support/cores.hpp"

#include <aem/capsule.hpp>
#include <aem/completion_fd.hpp>
#include <aem/runtime.hpp>

#include <doctest/doctest.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>

#include <algorithm>
#include <future>
#include <memory>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

// readable_now reports whether `fd` polls readable without waiting.
bool readable_now(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

// wait_readable waits for `fd` the way a foreign loop does; the bound only keeps a lost
// wake-up from hanging the suite, it is not a timing assertion.
bool wait_readable(int fd) {
  constexpr int kHangGuardMs = 60'000;
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, kHangGuardMs) == 1 && (p.revents & POLLIN) != 0;
}

// collect drains `queue` from a foreign thread until `expected` values have arrived.
template <typename T>
std::vector<T> collect(const aem::CompletionFd<T>& queue, std::size_t expected) {
  std::vector<T> all;
  std::vector<T> batch;
  while (all.size() < expected) {
    if (!wait_readable(queue.fd())) break;
    queue.drain(batch);
    all.insert(all.end(), batch.begin(), batch.end());
    batch.clear();
  }
  return all;
}

}  // namespace

TEST_CASE("completion fd: readable exactly while values wait, drain keeps posting order") {
  auto queue = aem::CompletionFd<int>::create();
  REQUIRE(queue);
  CHECK(queue->fd() >= 0);
  CHECK_FALSE(readable_now(queue->fd()));
  std::vector<int> out;
  CHECK(queue->drain(out) == 0);
  CHECK_FALSE(readable_now(queue->fd()));

  for (int i = 0; i < 5; ++i) REQUIRE(queue->post(i));
  CHECK(readable_now(queue->fd()));
  out.push_back(-1);  // drain appends to what `out` holds
  CHECK(queue->drain(out) == 5);
  CHECK(out == std::vector<int>{-1, 0, 1, 2, 3, 4});
  CHECK_FALSE(readable_now(queue->fd()));

  // A copy is the same queue.
  const aem::CompletionFd<int> copy = *queue;
  REQUIRE(copy.post(7));
  CHECK(copy.fd() == queue->fd());
  out.clear();
  CHECK(queue->drain(out) == 1);
  CHECK(out == std::vector<int>{7});
}

TEST_CASE("completion fd: move-only values") {
  auto queue = aem::CompletionFd<std::unique_ptr<std::string>>::create();
  REQUIRE(queue);
  REQUIRE(queue->post(std::make_unique<std::string>("first")));
  REQUIRE(queue->post(std::make_unique<std::string>("second")));
  std::vector<std::unique_ptr<std::string>> out;
  out.push_back(std::make_unique<std::string>("held"));
  CHECK(queue->drain(out) == 2);
  REQUIRE(out.size() == 3);
  CHECK(*out[1] == "first");
  CHECK(*out[2] == "second");
}

TEST_CASE("completion fd: capsules on every core post, a foreign thread polls and drains") {
  for (unsigned cores : aem_test::kCoreCounts) {
    CAPTURE(cores);
    aem::Runtime rt(aem_test::config_for(cores));
    REQUIRE(rt.start());
    auto results = aem::CompletionFd<int>::create();
    REQUIRE(results);
    constexpr int kTasks = 600;
    std::thread consumer_thread;
    std::vector<int> received;
    consumer_thread = std::thread([&] { received = collect(*results, kTasks); });
    std::vector<std::future<bool>> posted;
    for (int i = 0; i < kTasks; ++i) {
      posted.push_back(rt.submit(static_cast<unsigned>(i) % cores, [i, queue = *results] {
        if (i % 60 == 0) aem::this_capsule::sleep_for(200us);  // some results arrive late
        return queue.post(i).has_value();
      }));
    }
    for (auto& p : posted) CHECK(p.get());
    consumer_thread.join();
    REQUIRE(received.size() == kTasks);
    std::sort(received.begin(), received.end());
    std::vector<int> expected(kTasks);
    std::iota(expected.begin(), expected.end(), 0);
    CHECK(received == expected);  // each value exactly once
    CHECK_FALSE(readable_now(results->fd()));
    rt.stop();
  }
}

TEST_CASE("completion fd: plain threads post while another drains") {
  auto queue = aem::CompletionFd<long>::create();
  REQUIRE(queue);
  constexpr int kPosters = 4;
  constexpr long kPerPoster = 2000;
  std::vector<long> received;
  std::thread consumer([&] { received = collect(*queue, kPosters * kPerPoster); });
  std::vector<std::thread> posters;
  for (int t = 0; t < kPosters; ++t) {
    posters.emplace_back([&, t] {
      for (long i = 0; i < kPerPoster; ++i) (void)queue->post(t * kPerPoster + i);
    });
  }
  for (auto& p : posters) p.join();
  consumer.join();
  REQUIRE(received.size() == kPosters * kPerPoster);
  // Per poster, values arrive in the order they were posted.
  std::vector<long> last(kPosters, -1);
  int out_of_order = 0;
  for (long v : received) {
    const auto poster = static_cast<std::size_t>(v / kPerPoster);
    if (v <= last[poster]) ++out_of_order;
    last[poster] = v;
  }
  CHECK(out_of_order == 0);
}

TEST_CASE("completion fd: close refuses posts, keeps what was posted, stays readable") {
  auto queue = aem::CompletionFd<int>::create();
  REQUIRE(queue);
  REQUIRE(queue->post(1));
  CHECK_FALSE(queue->closed());
  queue->close();
  queue->close();  // idempotent
  CHECK(queue->closed());
  CHECK(queue->post(2).error() == aem::errc::channel_closed);
  CHECK(readable_now(queue->fd()));
  std::vector<int> out;
  CHECK(queue->drain(out) == 1);
  CHECK(out == std::vector<int>{1});
  CHECK(readable_now(queue->fd()));  // a loop asleep on it must still wake and see closed()

  // From a capsule, the refusal is an error code like any other.
  aem::Runtime rt(aem_test::config_for(1));
  REQUIRE(rt.start());
  CHECK(rt.submit(0, [q = *queue] { return q.post(3).error(); }).get() == aem::errc::channel_closed);
  rt.stop();
}

TEST_CASE("completion fd: a moved-from handle reports errors instead of crashing") {
  auto queue = aem::CompletionFd<int>::create();
  REQUIRE(queue);
  aem::CompletionFd<int> taken = std::move(*queue);
  CHECK(queue->fd() == -1);
  CHECK(queue->post(1).error() == aem::errc::invalid_argument);
  std::vector<int> out;
  CHECK(queue->drain(out) == 0);
  CHECK(queue->closed());
  queue->close();
  REQUIRE(taken.post(1));
  CHECK(taken.drain(out) == 1);
}

// In a child: it exhausts the descriptor table.
TEST_CASE("completion fd: create reports EMFILE when no descriptor is left") {
  const auto result = aem_test::run_in_child([] {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 10;
    limit.rlim_cur = 64;
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) return 11;
    std::vector<int> filler;
    for (int fd; (fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;) filler.push_back(fd);
    auto queue = aem::CompletionFd<int>::create();
    // Descriptors back before the error is compared: UBSan's vptr check needs one for a pipe.
    for (int fd : filler) ::close(fd);
    if (queue) return 1;
    return queue.error() == std::errc::too_many_files_open ? 0 : 2;
  });
  INFO(result.output);
  CHECK_FALSE(result.signaled);
  CHECK(result.exit_code == 0);
}
