// A registration without on_lost reports its lost activations on stderr, naming it by kind and
// id in readable form (core/slot/generation), each word once.
#include "support/cores.hpp"
#include "support/event_helpers.hpp"

#include <aem/event.hpp>
#include <aem/runtime.hpp>

#include <doctest/doctest.h>

#include <cstdio>
#include <string>
#include <unistd.h>

using aem_test::wait_until;

namespace {

// StderrCapture sends what the process writes to stderr into a temporary file while it lives.
class StderrCapture {
 public:
  StderrCapture() : file_(std::tmpfile()), saved_(::dup(STDERR_FILENO)) {
    REQUIRE(file_ != nullptr);
    REQUIRE(saved_ >= 0);
    std::fflush(stderr);
    REQUIRE(::dup2(::fileno(file_), STDERR_FILENO) >= 0);
  }
  ~StderrCapture() {
    restore();
    if (file_ != nullptr) std::fclose(file_);
  }
  StderrCapture(const StderrCapture&) = delete;
  StderrCapture& operator=(const StderrCapture&) = delete;

  // text restores stderr and returns what was written meanwhile.
  std::string text() {
    restore();
    std::string out;
    std::rewind(file_);
    char buffer[512];
    for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, file_)) > 0;) out.append(buffer, n);
    return out;
  }

 private:
  void restore() {
    if (saved_ < 0) return;
    std::fflush(stderr);
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
    saved_ = -1;
  }

  std::FILE* file_;
  int saved_;
};

}  // namespace

TEST_CASE("events: the lost-activation report names the registration once, with a readable id") {
  aem::Runtime rt(aem_test::config_for(1));
  StderrCapture capture;
  aem::EventId id;
  rt.run([&] {
    int handled = 0;
    auto registered = aem::on_event([&] { ++handled; }, {.exec = aem::Executor::keepalive, .queue_bound = 1});
    REQUIRE(registered);
    id = *registered;
    // The first waits for the keepalive capsule; with the queue at its bound the rest are lost.
    for (int i = 0; i < 4; ++i) (void)aem::trigger(id);
    REQUIRE(wait_until([&] {
      auto info = aem::ctl(id).info();
      return info && info->queued == 0 && info->running == 0;
    }));
    CHECK(aem::ctl(id).info()->lost == 3);
  });
  const std::string text = capture.text();
  CAPTURE(text);
  const std::string expected = "aem: 3 activations of event " + std::to_string(id.core()) + "/" +
                               std::to_string(id.slot()) + "/" + std::to_string(id.generation()) +
                               " (core/slot/generation) were lost at its queue bound (1)";
  CHECK(text.find(expected) != std::string::npos);
  CHECK(text.find("event event") == std::string::npos);
  CHECK(text.find(std::to_string(id.value())) == std::string::npos);  // no raw id
}
