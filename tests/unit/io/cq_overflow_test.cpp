// No completion is lost when a core's completion queue overflows (CGL 3.5.1): ring sizes are
// validated alike on both backends, and a flood of completions into a deliberately tiny CQ
// reaches every waiter exactly once. Where the kernel cannot keep overflowed completions
// (no IORING_FEAT_NODROP) or refuses io_uring, the io_uring checks are skipped with a message.
#include "io/uring/uring_backend.hpp"
#include "runtime/sched/core.hpp"
#include "support/backend_helpers.hpp"
#include "support/cores.hpp"

#include <aem/capsule.hpp>
#include <aem/error.hpp>
#include <aem/fd_io.hpp>
#include <aem/runtime.hpp>

#include <doctest/doctest.h>

#include <array>
#include <cstddef>
#include <memory>
#include <poll.h>
#include <string_view>
#include <system_error>
#include <unistd.h>
#include <vector>

using aem::detail::RingSizes;
using aem_test::Pipe;
using aem_test::Recorder;

namespace {

bool refuses(aem::BackendKind kind, RingSizes sizes) {
  auto created = aem::detail::create_backend(kind, sizes);
  return !created && created.error() == aem::make_error_code(aem::errc::invalid_argument);
}

// tiny_uring makes an io_uring backend with a 2-entry SQ and CQ, or returns nullptr (with a
// message) where the kernel refuses io_uring or would drop completions on overflow.
std::unique_ptr<aem::detail::Backend> tiny_uring() {
  auto backend = aem_test::make_backend<aem_test::UringKind>(RingSizes{2, 2});
  if (backend && !backend->features().cq_nodrop) {
    MESSAGE("the kernel lacks IORING_FEAT_NODROP: overflowed completions would be dropped");
    return nullptr;
  }
  return backend;
}

}  // namespace

TEST_CASE("cq overflow: ring sizes are validated alike on both backends") {
  for (aem::BackendKind kind : {aem::BackendKind::io_uring, aem::BackendKind::epoll}) {
    CAPTURE(static_cast<int>(kind));
    CHECK(refuses(kind, RingSizes{0, 0}));                           // no SQ
    CHECK(refuses(kind, RingSizes{3, 0}));                           // not a power of two
    CHECK(refuses(kind, RingSizes{2 * aem::kMaxRingEntries, 0}));    // too large
    CHECK(refuses(kind, RingSizes{8, 4}));                           // CQ smaller than SQ
    CHECK(refuses(kind, RingSizes{8, 12}));                          // CQ not a power of two
    CHECK(refuses(kind, RingSizes{8, 2 * aem::kMaxCqEntries}));      // CQ too large
  }
  CHECK(aem::detail::validate_ring_sizes(RingSizes{2, 2}));
  CHECK(aem::detail::validate_ring_sizes(RingSizes{256, 0}));
  CHECK(aem::detail::validate_ring_sizes(RingSizes{aem::kMaxRingEntries, aem::kMaxCqEntries}));
  CHECK(aem::detail::create_backend(aem::BackendKind::epoll, RingSizes{2, 2}));

  aem::Config config = aem_test::config_for(1);
  config.cq_entries = 100;
  aem::Runtime rt(config);
  const aem::Result<void> started = rt.start();
  REQUIRE_FALSE(started);
  CHECK(started.error() == aem::make_error_code(aem::errc::invalid_argument));
  CHECK_FALSE(rt.running());
}

TEST_CASE("cq overflow: a flood into a 2-entry completion queue delivers every completion once") {
  auto backend = tiny_uring();
  if (!backend) return;
  Pipe pipe;  // its write end is writable: every poll completes at once, all of them together
  constexpr int kOperations = 300;
  std::vector<Recorder> recorders(kOperations);
  aem::detail::IoRequest request;
  request.opcode = aem::detail::IoOpcode::poll;
  request.fd = pipe.fds[1];
  request.flags = POLLOUT;
  for (Recorder& recorder : recorders) backend->submit(request, &recorder.completion, nullptr);
  aem_test::settle_all(*backend);
  CHECK(backend->in_flight() == 0);
  int delivered_once = 0;
  for (const Recorder& recorder : recorders) {
    if (recorder.calls() == 1 && recorder.finals == 1 && (recorder.last() & POLLOUT) != 0) ++delivered_once;
  }
  CHECK(delivered_once == kOperations);
  const aem::detail::BackendStats stats = backend->stats();
  CHECK(stats.cq_overflows > 0);  // the flood did overflow the queue...
  CHECK(stats.cq_dropped == 0);   // ...and the kernel kept every completion
}

TEST_CASE("cq overflow: hundreds of capsules reading at once on one core with a tiny ring all complete") {
  aem::Config config = aem_test::config_for(1);
  config.ring_entries = 2;
  config.cq_entries = 2;
  config.capsules_per_core = 32;
  aem::Runtime rt(config);
  constexpr int kReaders = 256;
  std::vector<std::unique_ptr<Pipe>> pipes;
  for (int i = 0; i < kReaders; ++i) pipes.push_back(std::make_unique<Pipe>());
  struct Outcome {
    int completed = 0;   // reads that returned their byte
    int wrong = 0;       // reads that returned anything else
    bool checked = false;
    aem::detail::BackendStats stats;
  };
  const Outcome outcome = rt.run([&] {
    Outcome result;
    int waiting = 0;
    std::vector<aem::Capsule<bool>> readers;
    for (int i = 0; i < kReaders; ++i) {
      auto reader = aem::spawn([&, i] {
        std::array<std::byte, 1> byte{};
        ++waiting;
        const aem::Result<std::size_t> got = aem::read(pipes[i]->fds[0], byte);
        return got && *got == 1 && byte[0] == static_cast<std::byte>(i & 0xff);
      });
      REQUIRE(reader);
      readers.push_back(std::move(*reader));
    }
    while (waiting < kReaders) aem::this_capsule::yield();
    // Every read completes at once: far more completions than the CQ has entries.
    for (int i = 0; i < kReaders; ++i) {
      const auto byte = static_cast<unsigned char>(i & 0xff);
      REQUIRE(::write(pipes[i]->fds[1], &byte, 1) == 1);
    }
    for (auto& reader : readers) (reader.join() ? result.completed : result.wrong) += 1;
    aem::detail::Backend& backend = aem::detail::Core::current_core()->backend();
    result.checked = std::string_view(backend.name()) == "io_uring" && backend.features().cq_nodrop;
    result.stats = backend.stats();
    return result;
  });
  CHECK(outcome.completed == kReaders);
  CHECK(outcome.wrong == 0);
  if (outcome.checked) {
    CHECK(outcome.stats.cq_overflows > 0);
    CHECK(outcome.stats.cq_dropped == 0);
  } else {
    MESSAGE("not io_uring with FEAT_NODROP here: overflow counters not checked");
  }
}
