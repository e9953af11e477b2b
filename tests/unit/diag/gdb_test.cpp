// gdb_test.cpp — gdb/aem.py against a live process: this test binary runs itself under
// `gdb -batch`, as the target test case below, stops at a breakpoint while one capsule is
// parked on a channel, and checks that `aem capsules` lists both capsules and `aem bt` prints
// the parked capsule's own frame. Skipped where gdb is missing or may not trace.
#include "unit/diag/diag_helpers.hpp"

#include "support/cores.hpp"
#include "support/run_command.hpp"

#include <aem/capsule.hpp>
#include <aem/channel.hpp>
#include <aem/runtime.hpp>

#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include <unistd.h>

namespace {

using aem_test::run_command;

constexpr const char* kTargetVariable = "AEM_DIAG_GDB_TARGET";

[[gnu::noinline]] void diag_gdb_parked(aem::Channel<int>& channel) {
  (void)channel.receive();
  AEM_KEEP_FRAME();
}

// aem_diag_gdb_stop is where gdb stops the target.
extern "C" [[gnu::noinline, gnu::used]] void aem_diag_gdb_stop() { AEM_KEEP_FRAME(); }

std::string source_root() {
  std::string file = __FILE__;
  const std::string tail = "tests/unit/diag/gdb_test.cpp";
  return file.size() > tail.size() ? file.substr(0, file.size() - tail.size()) : std::string("./");
}

}  // namespace

TEST_CASE("diag: gdb target (does nothing unless run by the gdb test)") {
  if (std::getenv(kTargetVariable) == nullptr) return;
  aem::Config config = aem_test::config_for(1);
  aem::Runtime rt(config);
  rt.run([] {
    aem::Channel<int> channel(1);
    auto parked = aem::spawn([&] { diag_gdb_parked(channel); });
    REQUIRE(parked);
    aem::this_capsule::yield();  // it runs and parks on the empty channel
    aem_diag_gdb_stop();
    REQUIRE(channel.send(1));
    parked->join();
  });
}

TEST_CASE("diag: gdb's aem capsules and aem bt show a parked capsule of a live process") {
#if !defined(__x86_64__)
  // The commands read x86-64 saved registers, and a cross-built test runs under an emulator
  // that the host's gdb cannot attach to.
  MESSAGE("the gdb commands are for x86-64: skipped");
  return;
#endif
  if (run_command("gdb --version 2>/dev/null").find("GNU gdb") == std::string::npos) {
    MESSAGE("gdb is not installed: skipped");
    return;
  }
  const std::string command = std::string(kTargetVariable) + "=1 gdb -batch -nx -q" +
                              " -ex 'set debuginfod enabled off' -ex 'set confirm off'" +
                              " -ex 'break aem_diag_gdb_stop' -ex run -ex 'source " + source_root() + "gdb/aem.py'" +
                              " -ex 'aem capsules' -ex 'aem bt 0:2' -ex kill" +
                              " --args /proc/" + std::to_string(::getpid()) + "/exe" +
                              " '--test-case=diag: gdb target*' 2>&1";
  const std::string output = run_command(command);
  if (output.find("ptrace") != std::string::npos && output.find("not permitted") != std::string::npos) {
    MESSAGE("ptrace is not permitted here: skipped\n" << output);
    return;
  }
  MESSAGE(output);
  CHECK(output.find("core 0 (thread ") != std::string::npos);
  CHECK(output.find("capsule 0:1 running") != std::string::npos);
  CHECK(output.find("capsule 0:2 waiting on channel (receive: empty)") != std::string::npos);
  CHECK(output.find("gdb_test.cpp:") != std::string::npos);  // the spawn site
  CHECK(output.find("diag_gdb_parked") != std::string::npos);
}
