// stall_test.cpp — the stall detector: a capsule that holds its core past
// Config::stall_threshold is reported once, with its spawn site and its backtrace; an idle
// runtime is never reported; the metrics count the stall.
#include "unit/diag/diag_helpers.hpp"

#include "support/cores.hpp"

#include <aem/capsule.hpp>
#include <aem/runtime.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <string>

using namespace std::chrono_literals;

namespace {

[[gnu::noinline]] void diag_test_spin(std::chrono::milliseconds length) {
  const auto end = std::chrono::steady_clock::now() + length;
  while (std::chrono::steady_clock::now() < end) AEM_KEEP_FRAME();
  AEM_KEEP_FRAME();
}

// watched_config is a test Config with stall threshold `threshold`, logging into `log`.
aem::Config watched_config(unsigned cores, std::chrono::nanoseconds threshold, aem_test::KeptLog& log) {
  aem::Config config = aem_test::config_for(cores);
  config.stall_threshold = threshold;
  config.log = log.sink();
  return config;
}

}  // namespace

TEST_CASE("diag: a capsule spinning 500 ms past a 100 ms threshold is reported once, naming the function and its spawn site") {
  aem_test::KeptLog log;
  aem::Runtime rt(watched_config(1, 100ms, log));
  unsigned spawn_line = 0;
  rt.run([&] {
    auto spinner = aem::spawn([] { diag_test_spin(500ms); }); spawn_line = __LINE__;
    REQUIRE(spinner);
    spinner->join();
  });
  const std::vector<std::string> reports = log.containing("stalled");
  REQUIRE(reports.size() == 1);
  const std::string& report = reports.front();
  MESSAGE(report);
  CHECK(report.find("core 0 stalled for ") != std::string::npos);
  if (aem::SpawnSite::here().known()) CHECK(report.find("stall_test.cpp:" + std::to_string(spawn_line)) != std::string::npos);
  if (aem_test::kDiagSanitizedThreads) {
    // ThreadSanitizer delivers the signal late (or not at all) and its interceptors cut the
    // unwound stack short: the backtrace is not checked there.
    MESSAGE("ThreadSanitizer build: the backtrace check is skipped");
  } else {
    CHECK(report.find("diag_test_spin") != std::string::npos);
  }
  const std::vector<aem::CoreMetrics> metrics = rt.metrics();
  CHECK(metrics[0].stalls == 1);
  CHECK(metrics[0].stall_max_ns >= 100'000'000);
  CHECK(aem::to_prometheus(metrics).find("aem_stalls_total{core=\"0\"} 1") != std::string::npos);
}

TEST_CASE("diag: an idle runtime is never reported as stalled") {
  aem_test::KeptLog log;
  aem::Runtime rt(watched_config(2, 100ms, log));
  rt.run([] { aem::this_capsule::sleep_for(1s); });
  CHECK(log.containing("stalled").empty());
  for (const aem::CoreMetrics& core : rt.metrics()) CHECK(core.stalls == 0);
}

TEST_CASE("diag: a stall threshold of 0 turns the detector off") {
  aem_test::KeptLog log;
  aem::Runtime rt(watched_config(1, 0ms, log));
  rt.run([] { diag_test_spin(300ms); });
  CHECK(log.containing("stalled").empty());
  CHECK(rt.metrics()[0].stalls == 0);
}

TEST_CASE("diag: a negative stall threshold or a bad dump signal fails the start") {
  aem::Config negative = aem_test::config_for(1);
  negative.stall_threshold = -1ms;
  aem::Runtime first(negative);
  CHECK(first.start().error() == aem::errc::invalid_argument);
  aem::Config bad_signal = aem_test::config_for(1);
  bad_signal.dump_signal = SIGKILL;
  aem::Runtime second(bad_signal);
  CHECK(second.start().error() == aem::errc::invalid_argument);
}
