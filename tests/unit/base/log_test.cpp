// log_test.cpp — Config::log: the runtime's diagnostics reach the sink of the runtime that
// raised them (a listener's back-off under EMFILE, a handler's exception), the default sink
// writes "aem: <message>" to stderr, and a thread of no runtime, a sink that throws and a sink
// that logs itself are each routed somewhere safe.
#include "base/log.hpp"
#include "support/child_process.hpp"
#include "support/cores.hpp"
#include "support/fd_shortage.hpp"
#include "support/net_helpers.hpp"

#include <aem/capsule.hpp>
#include <aem/config.hpp>
#include <aem/error_event.hpp>
#include <aem/log.hpp>
#include <aem/metrics.hpp>
#include <aem/net.hpp>
#include <aem/net/events.hpp>
#include <aem/runtime.hpp>
#include <aem/timer.hpp>

#include <doctest/doctest.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

// SavedRecord is a LogRecord whose message outlives the sink's call.
struct SavedRecord {
  aem::LogLevel level;
  unsigned core;
  std::string message;
};

// RecordingSink keeps every record it is handed; the runtime's threads call it concurrently.
class RecordingSink {
 public:
  aem::LogSink sink() {
    return [this](const aem::LogRecord& record) {
      std::lock_guard lock(mutex_);
      records_.push_back({record.level, record.core, std::string(record.message)});
    };
  }
  std::vector<SavedRecord> records() const {
    std::lock_guard lock(mutex_);
    return records_;
  }
  // count returns how many messages contain `text`.
  int count(const std::string& text) const {
    std::lock_guard lock(mutex_);
    return static_cast<int>(std::count_if(records_.begin(), records_.end(), [&](const SavedRecord& r) {
      return r.message.find(text) != std::string::npos;
    }));
  }
  std::string all() const {
    std::lock_guard lock(mutex_);
    std::string text;
    for (const SavedRecord& r : records_) text += std::string(aem::log_level_name(r.level)) + ": " + r.message + "\n";
    return text;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<SavedRecord> records_;
};

aem::Config config_with_sink(unsigned cores, RecordingSink& recording) {
  aem::Config config = aem_test::config_for(cores);
  config.log = recording.sink();
  return config;
}

// throw_in_timer_handler arms a timer whose handler throws `what`, and waits until it ran.
void throw_in_timer_handler(const char* what) {
  auto ran = std::make_shared<std::atomic<bool>>(false);
  auto id = aem::after(1ms, [ran, what] {
    ran->store(true);
    throw std::runtime_error(what);
  });
  REQUIRE(id);
  while (!ran->load()) aem::this_capsule::sleep_for(1ms);
  aem::this_capsule::sleep_for(5ms);  // the dispatcher reports the exception after the handler
}

}  // namespace

TEST_CASE("log: a custom sink receives a handler's exception, with its level and core") {
  RecordingSink recording;
  aem::Runtime rt(config_with_sink(2, recording));
  rt.run([] {
    throw_in_timer_handler("boom on core 0");
    auto other = aem::spawn([] { throw_in_timer_handler("boom on core 1"); }, {.core = 1});
    REQUIRE(other);
    other->join();
  });
  INFO(recording.all());
  const std::vector<SavedRecord> records = recording.records();
  int seen = 0;
  for (const SavedRecord& r : records) {
    if (r.message.find("threw: boom on core 0") != std::string::npos) {
      CHECK(r.level == aem::LogLevel::warning);
      CHECK(r.core == 0);
      CHECK(r.message.rfind("the handler of timer ", 0) == 0);
      ++seen;
    } else if (r.message.find("threw: boom on core 1") != std::string::npos) {
      CHECK(r.core == 1);
      ++seen;
    }
  }
  CHECK(seen == 2);
  for (const SavedRecord& r : records) CHECK(r.message.find('\n') == std::string::npos);  // no newline
}

TEST_CASE("log: two runtimes in one process each log to their own sink") {
  RecordingSink first_sink;
  RecordingSink second_sink;
  aem::Runtime first(config_with_sink(1, first_sink));
  aem::Runtime second(config_with_sink(1, second_sink));
  REQUIRE(first.start());
  REQUIRE(second.start());
  first.submit(0, [] { throw_in_timer_handler("from the first"); }).get();
  second.submit(0, [] { throw_in_timer_handler("from the second"); }).get();
  first.stop();
  second.stop();
  INFO(first_sink.all() << "---\n" << second_sink.all());
  CHECK(first_sink.count("from the first") == 1);
  CHECK(first_sink.count("from the second") == 0);
  CHECK(second_sink.count("from the second") == 1);
  CHECK(second_sink.count("from the first") == 0);
}

TEST_CASE("log: a thread of no runtime logs to the oldest live runtime's sink") {
  RecordingSink recording;
  {
    aem::Runtime rt(config_with_sink(1, recording));
    std::thread([] { aem::detail::log(aem::LogLevel::error, "from a plain thread: %d", 42); }).join();
  }
  INFO(recording.all());
  const std::vector<SavedRecord> records = recording.records();
  REQUIRE(records.size() == 1);
  CHECK(records[0].message == "from a plain thread: 42");
  CHECK(records[0].level == aem::LogLevel::error);
  CHECK(records[0].core == aem::kNoCore);
}

TEST_CASE("log: a message longer than the line buffer is cut and marked") {
  RecordingSink recording;
  const aem::LogSink sink = recording.sink();
  const aem::detail::LogScope scope(sink, 3);
  const std::string long_text(2 * aem::detail::kLogLineBytes, 'x');
  aem::detail::log(aem::LogLevel::debug, "%s", long_text.c_str());
  aem::detail::log_text(aem::LogLevel::info, long_text);  // unformatted: whole
  const std::vector<SavedRecord> records = recording.records();
  REQUIRE(records.size() == 2);
  CHECK(records[0].message.size() == aem::detail::kLogLineBytes - 1);
  CHECK(records[0].message.substr(records[0].message.size() - 3) == "...");
  CHECK(records[0].core == 3);
  CHECK(records[1].message == long_text);
}

// In a child: it checks what reaches the process's stderr.
TEST_CASE("log: the default sink writes 'aem: <message>' to stderr") {
  const auto result = aem_test::run_in_child([] {
    aem::Runtime rt(aem_test::config_for(1));  // no Config::log
    rt.run([] { throw_in_timer_handler("default sink"); });
    aem::write_log_to_stderr({aem::LogLevel::info, aem::kNoCore, "written directly"});
    return 0;
  });
  INFO(result.output);
  CHECK(result.exit_code == 0);
  CHECK(result.output.find("aem: the handler of timer ") != std::string::npos);
  CHECK(result.output.find("threw: default sink\n") != std::string::npos);
  CHECK(result.output.find("aem: written directly\n") != std::string::npos);
}

TEST_CASE("log: what a sink throws or logs itself goes to stderr, never back to the sink") {
  const auto result = aem_test::run_in_child([] {
    int calls = 0;
    const aem::LogSink sink = [&calls](const aem::LogRecord& record) {
      ++calls;
      if (record.message == "throw") throw std::runtime_error("sink failed");
      aem::detail::log(aem::LogLevel::info, "logged inside the sink");
    };
    const aem::detail::LogScope scope(sink);
    aem::detail::log(aem::LogLevel::warning, "throw");
    aem::detail::log(aem::LogLevel::warning, "first");
    return calls == 2 ? 0 : 1;
  });
  INFO(result.output);
  CHECK(result.exit_code == 0);
  CHECK(result.output.find("aem: throw\n") != std::string::npos);
  CHECK(result.output.find("aem: logged inside the sink\n") != std::string::npos);
  CHECK(result.output.find("aem: first\n") == std::string::npos);
}

namespace {

// AcceptStyle picks the listener that runs out of descriptors.
enum class AcceptStyle { on_accept, blocking_accept };

// accept_under_emfile runs, on a runtime logging to `recording`, a listener whose 32 clients
// connect while only 3 descriptors are free (as in the socket tests): accepting pauses and
// resumes as the handler frees what it holds. Returns the back-offs counted, or a negative
// step that failed. Call in a child: it lowers RLIMIT_NOFILE.
int accept_under_emfile(AcceptStyle style, RecordingSink& recording) {
  aem::Runtime rt(config_with_sink(1, recording));
  return rt.run([style]() -> int {
    aem::TcpListener listener = aem_test::loopback_listener();
    auto address = listener.local_address();
    if (!address) return -10;
    constexpr int kClients = 32;
    std::vector<aem::TcpStream> held;  // each keeps its descriptor until a pause frees them
    int running = 0;
    auto echo = [&](aem::TcpStream stream) {
      ++running;
      std::byte one[1];
      if (stream.read_exact(one, 10s)) (void)stream.write_all(one, 10s);
      held.push_back(std::move(stream));
      --running;
    };
    aem_test::OneByteClients clients(*address, kClients);
    auto on_error = aem::on_error([&](const aem::SubsystemError&) { held.clear(); });
    if (!on_error) return -11;
    bool lowered = false;
    const rlimit original = aem_test::leave_free_descriptors(3, lowered);
    if (!lowered) return -12;
    aem::Result<aem::EventId> registration = aem::EventId{};
    if (style == AcceptStyle::on_accept) {
      // Registered under the lowered limit: io_uring reads the limit when an accept is submitted.
      registration = aem::on_accept(listener, echo, {.on_error = [&](std::error_code) { held.clear(); }});
      if (!registration) return -13;
    }
    clients.go();
    if (style == AcceptStyle::blocking_accept) {
      for (int i = 0; i < kClients; ++i) {
        auto stream = listener.accept(20s);
        if (!stream) break;
        echo(std::move(*stream));
      }
    }
    const int echoed = clients.wait_finished();
    ::setrlimit(RLIMIT_NOFILE, &original);
    const unsigned long long backoffs = aem::this_core::socket_event_stats().accept_backoffs;
    if (style == AcceptStyle::on_accept) (void)aem::cancel(*registration);
    (void)aem::cancel(*on_error);
    // cancel lets handlers that run already finish: they still use the locals.
    while (running > 0) aem::this_capsule::sleep_for(1ms);
    held.clear();
    if (echoed != kClients) return -1;
    return static_cast<int>(backoffs);
  });
}

// check_shortage_reports returns 0 when `recording` heard of each descriptor shortage once (not
// once per pause) at warning level on core 0, and of accepting again after it; else a step.
int check_shortage_reports(int backoffs, const RecordingSink& recording) {
  std::printf("backoffs=%d\n%s", backoffs, recording.all().c_str());
  const int shortages = recording.count("accept failed for want of file descriptors (EMFILE)");
  const int recoveries = recording.count("accepts again");
  if (backoffs <= 0) return 1;
  if (shortages < 1 || shortages > backoffs) return 2;
  if (recoveries < 1 || recoveries > shortages) return 3;
  for (const SavedRecord& r : recording.records()) {
    if (r.message.find("EMFILE") != std::string::npos && (r.level != aem::LogLevel::warning || r.core != 0)) return 4;
  }
  return 0;
}

// check_accept_style runs accept_under_emfile in a child and checks its reports.
void check_accept_style(AcceptStyle style) {
  const auto result = aem_test::run_in_child([style] {
    RecordingSink recording;
    const int backoffs = accept_under_emfile(style, recording);
    return check_shortage_reports(backoffs, recording);
  });
  INFO(result.output);
  CHECK(result.exit_code == 0);
}

}  // namespace

TEST_CASE("log: a custom sink receives the accept back-off of an on_accept listener under EMFILE") {
  check_accept_style(AcceptStyle::on_accept);
}

TEST_CASE("log: a custom sink receives the accept back-off of a blocking accept under EMFILE") {
  check_accept_style(AcceptStyle::blocking_accept);
}
