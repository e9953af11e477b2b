// backend_helpers.hpp — driving a Backend directly in tests: a completion recorder, the two
// backends as doctest template parameters, and a bounded wait for completions.
#pragma once

#include "io/backend.hpp"
#include "io/backend_factory.hpp"

#include <aem/config.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <unistd.h>
#include <memory>
#include <vector>

namespace aem_test {

// Recorder keeps every completion of one operation.
struct Recorder {
  aem::detail::Completion completion{&on_complete};
  std::vector<int> results;  // in arrival order
  std::vector<std::uint32_t> flags;  // of each completion
  int finals = 0;            // completions without kCompletionMore
  int more = 0;              // completions with it

  int calls() const { return static_cast<int>(results.size()); }
  int last() const { return results.empty() ? 0 : results.back(); }

  static void on_complete(aem::detail::Completion* c, int result, std::uint32_t flags) noexcept {
    auto* self = reinterpret_cast<Recorder*>(c);  // completion is the first member
    self->results.push_back(result);
    self->flags.push_back(flags);
    if ((flags & aem::detail::kCompletionMore) != 0) ++self->more;
    else ++self->finals;
  }
};

struct UringKind {
  static constexpr aem::BackendKind kind = aem::BackendKind::io_uring;
};
struct EpollKind {
  static constexpr aem::BackendKind kind = aem::BackendKind::epoll;
};

// make_backend creates a backend of K's kind, or returns nullptr (with a message) where the
// machine refuses io_uring: the epoll instantiation covers it then.
template <typename K>
std::unique_ptr<aem::detail::Backend> make_backend(aem::detail::RingSizes sizes = 64) {
  auto created = aem::detail::create_backend(K::kind, sizes);
  if (!created && aem::detail::io_uring_refused(created.error())) {
    MESSAGE("io_uring is not available here: " << created.error().message());
    return nullptr;
  }
  REQUIRE(created);
  return std::move(*created);
}

// Pipe is a pipe closed at the end of the test: fds[0] reads, fds[1] writes.
struct Pipe {
  int fds[2] = {-1, -1};
  explicit Pipe(int flags = 0) { REQUIRE(::pipe2(fds, flags) == 0); }
  ~Pipe() {
    close(0);
    close(1);
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  // close closes one end early.
  void close(int end) {
    if (fds[end] >= 0) ::close(fds[end]);
    fds[end] = -1;
  }
};

// settle waits on `backend` until `done()` holds, in bounded rounds (no test depends on how
// long it takes; the bound only turns a lost completion into a failure instead of a hang).
template <typename Done>
void settle(aem::detail::Backend& backend, Done done) {
  for (int round = 0; !done() && round < 1000; ++round) {
    backend.wait(std::chrono::steady_clock::now() + std::chrono::milliseconds(10), 1);
  }
}

// settle_all waits until nothing is in flight.
inline void settle_all(aem::detail::Backend& backend) {
  settle(backend, [&] { return backend.in_flight() == 0; });
}

}  // namespace aem_test

TYPE_TO_STRING_AS("io_uring", aem_test::UringKind);
TYPE_TO_STRING_AS("epoll", aem_test::EpollKind);
