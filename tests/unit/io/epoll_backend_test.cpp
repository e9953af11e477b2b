// What only the epoll backend has: its deadline heap, the operations it does not implement
// yet, and fds that epoll cannot wait for.
#include "io/epoll/deadline_heap.hpp"
#include "io/epoll/epoll_backend.hpp"
#include "support/backend_helpers.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <random>
#include <unistd.h>

using aem::detail::IoOpcode;
using aem::detail::IoRequest;
using aem_test::Recorder;

namespace {

struct Timed {
  std::int64_t deadline_ns = 0;
  std::size_t heap_slot = aem::detail::kNotInHeap;
};

}  // namespace

TEST_CASE("deadline heap: yields records earliest first, also after erasing from the middle") {
  std::mt19937 random(7);
  std::vector<Timed> records(200);
  aem::detail::DeadlineHeap<Timed> heap;
  for (auto& r : records) {
    r.deadline_ns = static_cast<std::int64_t>(random() % 1000);
    REQUIRE(heap.push(&r));
  }
  for (std::size_t i = 0; i < records.size(); i += 3) heap.erase(&records[i]);
  heap.erase(&records[0]);  // erasing twice leaves the heap alone
  CHECK(records[0].heap_slot == aem::detail::kNotInHeap);
  std::vector<std::int64_t> order;
  while (!heap.empty()) {
    Timed* top = heap.top();
    order.push_back(top->deadline_ns);
    heap.erase(top);
  }
  CHECK(order.size() == records.size() - (records.size() + 2) / 3);
  CHECK(std::is_sorted(order.begin(), order.end()));
}

TEST_CASE("epoll backend: fds epoll cannot wait for are served synchronously") {
  auto created = aem::detail::EpollBackend::create();
  REQUIRE(created);
  auto& backend = **created;
  // /dev/null and /dev/zero have no poll: epoll_ctl refuses them with EPERM.
  const int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  const int zero = ::open("/dev/zero", O_RDONLY | O_CLOEXEC);
  REQUIRE(null >= 0);
  REQUIRE(zero >= 0);
  char buffer[16] = {1};
  IoRequest read;
  read.opcode = IoOpcode::read;
  read.fd = zero;
  read.buffer = buffer;
  read.length = sizeof buffer;
  IoRequest write = read;
  write.opcode = IoOpcode::write;
  write.fd = null;
  Recorder r;
  Recorder w;
  backend.submit(read, &r.completion, nullptr);
  backend.submit(write, &w.completion, nullptr);
  aem_test::settle_all(backend);
  CHECK(r.results == std::vector<int>{16});
  CHECK(buffer[0] == 0);
  CHECK(w.results == std::vector<int>{16});
  ::close(null);
  ::close(zero);
}
