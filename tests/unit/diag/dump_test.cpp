// dump_test.cpp — Runtime::dump: capsules parked on a socket read, a mutex, a channel and a
// sleep are each named with what they wait for, their spawn site and their own function in
// their backtrace; registrations are counted by kind, with the fullest queue and where it was
// registered; a core that does not answer is named as such; Config::dump_signal writes a dump
// to the log.
#include "unit/diag/diag_helpers.hpp"

#include "support/cores.hpp"
#include "support/net_helpers.hpp"

#include <aem/capsule.hpp>
#include <aem/channel.hpp>
#include <aem/cross_core.hpp>
#include <aem/event.hpp>
#include <aem/mutex.hpp>
#include <aem/runtime.hpp>
#include <aem/timer.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <string>
#include <thread>

using namespace std::chrono_literals;

namespace {

[[gnu::noinline]] void diag_test_read_socket(aem::TcpStream& stream) {
  char byte[1];
  (void)stream.read(std::span<char>(byte));
  AEM_KEEP_FRAME();
}

[[gnu::noinline]] void diag_test_lock_mutex(aem::Mutex& mutex) {
  mutex.lock();
  mutex.unlock();
  AEM_KEEP_FRAME();
}

[[gnu::noinline]] void diag_test_receive(aem::Channel<int>& channel) {
  (void)channel.receive();
  AEM_KEEP_FRAME();
}

[[gnu::noinline]] void diag_test_sleep(std::chrono::milliseconds length) {
  aem::this_capsule::sleep_for(length);
  AEM_KEEP_FRAME();
}

[[gnu::noinline]] void diag_test_spin(std::chrono::milliseconds length) {
  const auto end = std::chrono::steady_clock::now() + length;
  while (std::chrono::steady_clock::now() < end) AEM_KEEP_FRAME();
  AEM_KEEP_FRAME();
}

bool contains(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

// section returns the dump's lines from the one naming `capsule_line` to the next capsule's.
std::string capsule_section(const std::string& dump, const std::string& site) {
  const std::size_t at = dump.find(site);
  if (at == std::string::npos) return {};
  const std::size_t begin = dump.rfind("  capsule ", at);
  const std::size_t end = dump.find("  capsule ", at);
  return dump.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
}

}  // namespace

TEST_CASE("diag: a dump names each parked capsule's wait, spawn site and own frame") {
  if (!aem::SpawnSite::here().known()) {
    MESSAGE("no std::source_location with this compiler (spawn sites unknown): skipped");
    return;
  }
  aem::Config config = aem_test::config_for(2);
  aem::Runtime rt(config);
  std::string dump;
  unsigned read_line = 0, lock_line = 0, receive_line = 0, sleep_line = 0;
  rt.run([&] {
    aem_test::TcpPair pair = aem_test::tcp_pair();
    aem::Mutex mutex;
    aem::Channel<int> channel(1);
    mutex.lock();
    auto reader = aem::spawn([&] { diag_test_read_socket(pair.server); }, {.core = 1}); read_line = __LINE__;
    auto locker = aem::spawn([&] { diag_test_lock_mutex(mutex); }, {.core = 1}); lock_line = __LINE__;
    auto receiver = aem::spawn([&] { diag_test_receive(channel); }, {.core = 1}); receive_line = __LINE__;
    auto sleeper = aem::spawn([&] { diag_test_sleep(1s); }, {.core = 1}); sleep_line = __LINE__;
    REQUIRE((reader && locker && receiver && sleeper));
    // Let them park on core 1: a few hops through core 1's mailbox.
    for (int i = 0; i < 5; ++i) REQUIRE(aem::submit(1, [] {}));
    rt.dump([&](std::string_view piece) { dump += piece; });
    mutex.unlock();
    REQUIRE(channel.send(1));
    REQUIRE(pair.client.write(std::string_view("x")));
    reader->join();
    locker->join();
    receiver->join();
    sleeper->join();
  });
  MESSAGE(dump);
  const std::string file = "dump_test.cpp:";
  const std::string read = capsule_section(dump, file + std::to_string(read_line));
  const std::string lock = capsule_section(dump, file + std::to_string(lock_line));
  const std::string receive = capsule_section(dump, file + std::to_string(receive_line));
  const std::string sleep = capsule_section(dump, file + std::to_string(sleep_line));
  CHECK(contains(dump, "core 0"));
  CHECK(contains(dump, "core 1"));
  CHECK(contains(read, "waiting on fd "));
  CHECK(contains(lock, "waiting on mutex "));
  CHECK(contains(lock, "held by capsule 0:"));
  CHECK(contains(receive, "receive (empty)"));
  CHECK(contains(sleep, "waiting on a sleep"));
#if defined(__x86_64__)
  // Each parked capsule's innermost user frame, unwound from its saved registers.
  CHECK(contains(read, "diag_test_read_socket"));
  CHECK(contains(lock, "diag_test_lock_mutex"));
  CHECK(contains(receive, "diag_test_receive"));
  CHECK(contains(sleep, "diag_test_sleep"));
#else
  // Where the saved-register layout is not known the dump says so instead of guessing frames.
  CHECK(contains(read, "backtrace unavailable on this architecture"));
#endif
  // The root capsule, which made the dump, is running on core 0.
  CHECK(contains(dump, " running\n"));
}

TEST_CASE("diag: a dump counts registrations by kind and names the fullest queue and its site") {
  aem::Config config = aem_test::config_for(1);
  aem::Runtime rt(config);
  std::string dump;
  std::string after_cancel;
  unsigned fullest_line = 0;
  int delivered = 0;
  rt.run([&] {
    auto tick = aem::every(1h, [] {});
    auto once = aem::after(1h, [] {});
    auto quiet = aem::on_event([&] { ++delivered; });
    auto held = aem::on_event([&] { ++delivered; }); fullest_line = __LINE__;
    auto shorter = aem::on_event([&] { ++delivered; });
    REQUIRE((tick && once && quiet && held && shorter));
    // Disabled registrations queue their triggers: three on `held`, one on `shorter`.
    REQUIRE(aem::ctl(*held).disable());
    REQUIRE(aem::ctl(*shorter).disable());
    for (int i = 0; i < 3; ++i) REQUIRE(aem::trigger(*held));
    REQUIRE(aem::trigger(*shorter));
    rt.dump([&](std::string_view piece) { dump += piece; });
    // Cancelled registrations are no longer counted, and an empty table has no fullest queue.
    for (aem::EventId id : {*tick, *once, *quiet, *held, *shorter}) REQUIRE(aem::ctl(id).cancel());
    rt.dump([&](std::string_view piece) { after_cancel += piece; });
  });
  MESSAGE(dump);
  CHECK(delivered == 0);
  CHECK(contains(dump, "registrations: 2 timer, 3 event; 4 activation(s) queued"));
  CHECK(contains(dump, "fullest queue: event 0/"));
  CHECK(contains(dump, ", 3 queued, registered at "));
  if (aem::SpawnSite::here().known()) {
    CHECK(contains(dump, "dump_test.cpp:" + std::to_string(fullest_line) + " ("));
  } else {
    CHECK(contains(dump, "registered at an unknown site"));
  }
  MESSAGE(after_cancel);
  CHECK(contains(after_cancel, "registrations: none live; 0 activation(s) queued"));
  CHECK(!contains(after_cancel, "fullest queue"));
}

TEST_CASE("diag: a dump from a plain thread names a core that does not answer") {
  aem::Config config = aem_test::config_for(2);
  config.stall_threshold = 0ms;
  aem::Runtime rt(config);
  REQUIRE(rt.start());
  std::atomic<bool> spinning{false};
  auto busy = rt.submit(1, [&] {
    spinning.store(true);
    diag_test_spin(1500ms);
  });
  while (!spinning.load()) std::this_thread::sleep_for(1ms);
  std::string dump;
  rt.dump([&](std::string_view piece) { dump += piece; }, 200ms);
  busy.get();
  rt.stop();
  MESSAGE(dump);
  CHECK(contains(dump, "core 1 did not answer within 200 ms (stalled?)"));
  CHECK(contains(dump, "core 0 (thread "));
  std::string stopped;
  rt.dump([&](std::string_view piece) { stopped += piece; });
  CHECK(contains(stopped, "core 0 is not running"));
}

TEST_CASE("diag: the dump signal writes a dump to the log") {
  aem_test::KeptLog log;
  aem::Config config = aem_test::config_for(1);
  config.dump_signal = SIGUSR2;
  config.log = log.sink();
  aem::Runtime rt(config);
  rt.run([&] {
    auto sleeper = aem::spawn([] { diag_test_sleep(100ms); });
    REQUIRE(sleeper);
    ::raise(SIGUSR2);
    // The watchdog thread writes it; wait for it without a time limit of our own.
    while (log.containing("aem capsule dump").empty()) aem::this_capsule::sleep_for(5ms);
    sleeper->join();
  });
  const std::vector<std::string> dumps = log.containing("aem capsule dump");
  REQUIRE(dumps.size() == 1);
  CHECK(contains(dumps.front(), "waiting on a sleep"));
#if defined(__x86_64__)  // elsewhere the dump says the saved registers cannot be unwound
  CHECK(contains(dumps.front(), "diag_test_sleep"));
#endif
}
