#include "io/uring_backend.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <thread>
#include <unistd.h>

using namespace std::chrono_literals;
using aem::detail::Completion;
using aem::detail::UringBackend;

namespace {

struct Recorder {
  Completion completion{&on_complete};
  int result = 0;
  int calls = 0;
  static void on_complete(Completion* c, int result, std::uint32_t) noexcept {
    auto* self = reinterpret_cast<Recorder*>(c);
    self->result = result;
    ++self->calls;
  }
};

}  // namespace

TEST_CASE("uring backend: set-up takes the strongest flags the kernel grants") {
  auto backend = UringBackend::create(64);
  if (!backend && (backend.error() == std::errc::function_not_supported || backend.error() == std::errc::operation_not_permitted)) {
    MESSAGE("io_uring is not available here: " << backend.error().message());
    return;  // the epoll fallback covers this machine
  }
  REQUIRE(backend);
  const auto& f = (*backend)->features();
  // Every later flag needs SINGLE_ISSUER; DEFER_TASKRUN needs it too (kernel >= 6.1).
  if (f.defer_taskrun) CHECK(f.single_issuer);
  MESSAGE("single_issuer=" << f.single_issuer << " defer_taskrun=" << f.defer_taskrun << " coop_taskrun="
                           << f.coop_taskrun << " msg_ring=" << f.msg_ring << " ext_arg=" << f.ext_arg);
  CHECK(std::string((*backend)->name()) == "io_uring");
  CHECK((*backend)->in_flight() == 0);
}

TEST_CASE("uring backend: completions are delivered once, in-flight counts drop to zero") {
  auto created = UringBackend::create(8);
  if (!created) return;  // see above
  UringBackend& backend = **created;
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  Recorder reads[20];
  char buffers[20][4];
  for (int i = 0; i < 20; ++i) {  // more than the ring holds: sqe() submits when full
    io_uring_sqe* sqe = backend.sqe();
    io_uring_prep_read(sqe, fds[0], buffers[i], 1, 0);
    backend.prepare(sqe, &reads[i].completion);
  }
  backend.poll();
  CHECK(backend.in_flight() == 20);
  CHECK(backend.has_work());
  REQUIRE(::write(fds[1], "abcdefghijklmnopqrst", 20) == 20);
  for (int spins = 0; backend.in_flight() > 0 && spins < 1000; ++spins) backend.wait(std::chrono::steady_clock::now() + 10ms);
  CHECK(backend.in_flight() == 0);
  for (auto& r : reads) {
    CHECK(r.calls == 1);
    CHECK(r.result == 1);
  }
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST_CASE("uring backend: wait returns at its deadline, on a wake from a plain thread, and from another ring") {
  auto created = UringBackend::create(8);
  if (!created) return;
  UringBackend& backend = **created;
  const auto t0 = std::chrono::steady_clock::now();
  backend.wait(t0 + 2ms);
  CHECK(std::chrono::steady_clock::now() - t0 >= 2ms);

  std::thread waker([&] {
    std::this_thread::sleep_for(5ms);
    backend.wake(nullptr);  // eventfd path
  });
  backend.wait(std::chrono::steady_clock::time_point::max());  // would hang without the wake
  waker.join();

  // A wake from another ring (MSG_RING when the kernel has it, else the eventfd). The other
  // ring must be created on the thread that submits to it (SINGLE_ISSUER).
  std::thread other([&] {
    auto sender = UringBackend::create(8);
    REQUIRE(sender);
    std::this_thread::sleep_for(5ms);
    backend.wake(sender->get());
    (*sender)->poll();
  });
  backend.wait(std::chrono::steady_clock::time_point::max());
  other.join();
  CHECK(backend.in_flight() == 0);
}

TEST_CASE("uring backend: cancel_all ends in-flight operations with -ECANCELED") {
  auto created = UringBackend::create(8);
  if (!created) return;
  UringBackend& backend = **created;
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  Recorder read;
  char buffer[8];
  io_uring_sqe* sqe = backend.sqe();
  io_uring_prep_read(sqe, fds[0], buffer, sizeof buffer, 0);
  backend.prepare(sqe, &read.completion);
  backend.poll();
  backend.cancel_all();
  for (int spins = 0; backend.in_flight() > 0 && spins < 1000; ++spins) backend.wait(std::chrono::steady_clock::now() + 10ms);
  CHECK(read.calls == 1);
  CHECK(read.result == -ECANCELED);
  ::close(fds[0]);
  ::close(fds[1]);
}
