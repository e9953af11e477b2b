// Per-core metrics: counters and gauges move with what the cores do, every core can be read
// from any thread (also while it sleeps, and after the stop), and the Prometheus rendering
// follows the text exposition grammar with values equal to the struct's.
#include "support/cores.hpp"

#include <aem/capsule.hpp>
#include <aem/event.hpp>
#include <aem/core_arena.hpp>
#include <aem/metrics.hpp>
#include <aem/mutex.hpp>
#include <aem/net.hpp>
#include <aem/net/events.hpp>
#include <aem/runtime.hpp>
#include <aem/semaphore.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <future>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

using namespace std::chrono_literals;

namespace {

aem::CoreMetrics snapshot() {
  aem::Result<aem::CoreMetrics> m = aem::this_core::metrics();
  REQUIRE(m);
  return *m;
}

// Exposition is a parsed Prometheus text page: samples by "name{labels}", and which metric
// names had HELP and TYPE lines (and the type) before their first sample.
struct Exposition {
  std::map<std::string, std::string> samples;
  std::map<std::string, std::string> types;
  std::set<std::string> helped;
  std::vector<std::string> bad_lines;
};

Exposition parse(const std::string& text) {
  static const std::regex help(R"(^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$)");
  static const std::regex type(R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$)");
  static const std::regex sample(
      R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*\})? ([^ ]+)$)");
  Exposition page;
  std::istringstream lines(text);
  std::string line;
  std::smatch m;
  while (std::getline(lines, line)) {
    if (std::regex_match(line, m, help)) {
      page.helped.insert(m[1]);
    } else if (std::regex_match(line, m, type)) {
      page.types[m[1]] = m[2];
    } else if (std::regex_match(line, m, sample)) {
      const std::string value = m[3];
      char* end = nullptr;
      (void)std::strtod(value.c_str(), &end);
      const bool known = page.helped.count(m[1]) == 1 && page.types.count(m[1]) == 1;
      if (*end != '\0' || !known) page.bad_lines.push_back(line);
      page.samples[std::string(m[1]) + std::string(m[2])] = value;
    } else {
      page.bad_lines.push_back(line);
    }
  }
  return page;
}

std::string key(const std::string& name, unsigned core) { return name + "{core=\"" + std::to_string(core) + "\"}"; }
std::string key(const std::string& name, unsigned core, unsigned priority) {
  return name + "{core=\"" + std::to_string(core) + "\",priority=\"" + std::to_string(priority) + "\"}";
}

using Scalar = std::uint64_t aem::CoreMetrics::*;
using Levels = aem::PriorityCounts aem::CoreMetrics::*;

// The exposition names of CoreMetrics' fields: the contract the rendering is checked against.
const std::vector<std::pair<std::string, Scalar>> kCounters = {
    {"aem_capsules_spawned_total", &aem::CoreMetrics::capsules_spawned},
    {"aem_priority_boosts_total", &aem::CoreMetrics::priority_boosts},
    {"aem_loop_turns_total", &aem::CoreMetrics::loop_turns},
    {"aem_cq_overflows_total", &aem::CoreMetrics::cq_overflows},
    {"aem_cq_dropped_total", &aem::CoreMetrics::cq_dropped},
    {"aem_arena_fallbacks_total", &aem::CoreMetrics::arena_fallbacks},
    {"aem_accept_backoffs_total", &aem::CoreMetrics::accept_backoffs},
    {"aem_receive_starvations_total", &aem::CoreMetrics::receive_starvations},
    {"aem_capsule_pool_shortfalls_total", &aem::CoreMetrics::capsule_pool_shortfalls},
    {"aem_blocking_calls_total", &aem::CoreMetrics::blocking_calls},
    {"aem_blocking_timeouts_total", &aem::CoreMetrics::blocking_timeouts},
    {"aem_blocking_refusals_total", &aem::CoreMetrics::blocking_refusals},
    {"aem_stalls_total", &aem::CoreMetrics::stalls},
};
// Nanosecond counters, rendered in seconds.
const std::vector<std::pair<std::string, Scalar>> kSeconds = {
    {"aem_idle_seconds_total", &aem::CoreMetrics::idle_ns},
    {"aem_spin_seconds_total", &aem::CoreMetrics::spin_ns},
    {"aem_blocking_queue_wait_max_seconds", &aem::CoreMetrics::blocking_queue_wait_max_ns},
    {"aem_stall_max_seconds", &aem::CoreMetrics::stall_max_ns},
};
const std::vector<std::pair<std::string, Scalar>> kGauges = {
    {"aem_capsules_live", &aem::CoreMetrics::capsules_live},
    {"aem_capsules_pooled", &aem::CoreMetrics::capsules_pooled},
    {"aem_tasks_live", &aem::CoreMetrics::tasks_live},
    {"aem_arena_in_use_bytes", &aem::CoreMetrics::arena_bytes_in_use},
    {"aem_arena_capacity_bytes", &aem::CoreMetrics::arena_capacity},
    {"aem_arena_fallback_bytes", &aem::CoreMetrics::arena_fallback_bytes},
    {"aem_receive_buffers", &aem::CoreMetrics::receive_buffers},
    {"aem_receive_buffers_missing", &aem::CoreMetrics::receive_buffers_missing},
    {"aem_blocking_queued", &aem::CoreMetrics::blocking_queued},
    {"aem_blocking_busy", &aem::CoreMetrics::blocking_busy},
};
const std::vector<std::tuple<std::string, std::string, Levels>> kPerPriority = {
    {"aem_activations_total", "counter", &aem::CoreMetrics::activations},
    {"aem_deliveries_total", "counter", &aem::CoreMetrics::deliveries},
    {"aem_lost_events_total", "counter", &aem::CoreMetrics::lost_events},
    {"aem_ready_capsules", "gauge", &aem::CoreMetrics::ready_capsules},
    {"aem_pending_activations", "gauge", &aem::CoreMetrics::pending_activations},
};

// check_page checks that `text` renders `cores` exactly: grammar, HELP/TYPE, every value.
void check_page(const std::string& text, const std::vector<aem::CoreMetrics>& cores) {
  const Exposition page = parse(text);
  CHECK(page.bad_lines.empty());
  for (const std::string& line : page.bad_lines) MESSAGE("bad line: " << line);
  std::size_t expected_samples = 0;
  for (const aem::CoreMetrics& core : cores) {
    for (const auto& [name, field] : kCounters) {
      CHECK(page.types.at(name) == "counter");
      CHECK(page.samples.at(key(name, core.core)) == std::to_string(core.*field));
    }
    for (const auto& [name, field] : kGauges) {
      CHECK(page.types.at(name) == "gauge");
      CHECK(page.samples.at(key(name, core.core)) == std::to_string(core.*field));
    }
    for (const auto& [name, type, field] : kPerPriority) {
      CHECK(page.types.at(name) == type);
      for (unsigned p = 0; p < aem::kPriorityLevels; ++p) {
        CHECK(page.samples.at(key(name, core.core, p)) == std::to_string((core.*field)[p]));
      }
    }
    for (const auto& [name, field] : kSeconds) {
      const std::uint64_t ns = core.*field;
      CHECK(page.types.at(name) == (name.find("_total") != std::string::npos ? "counter" : "gauge"));
      CHECK(page.samples.at(key(name, core.core)) == std::to_string(ns / 1'000'000'000) + "." +
                                                         std::string(9 - std::to_string(ns % 1'000'000'000).size(), '0') +
                                                         std::to_string(ns % 1'000'000'000));
    }
    expected_samples += kCounters.size() + kGauges.size() + kSeconds.size() + kPerPriority.size() * aem::kPriorityLevels;
  }
  // Runtime-wide gauges: one sample without a core label.
  if (!cores.empty()) {
    CHECK(page.types.at("aem_blocking_threads") == "gauge");
    CHECK(page.samples.at("aem_blocking_threads") == std::to_string(cores.front().blocking_threads));
    ++expected_samples;
  }
  CHECK(page.samples.size() == expected_samples);  // nothing unaccounted for
}

}  // namespace

TEST_CASE("metrics: spawns, live and pooled capsules, ready capsules by priority") {
  aem::Config config = aem_test::config_for(1);
  config.starvation_budget = 0;
  aem::Runtime rt(config);
  rt.run([] {
    REQUIRE(aem::this_capsule::set_priority(aem::Priority::critical));
    const aem::CoreMetrics before = snapshot();
    CHECK(before.capsules_live >= 1);  // the root
    std::vector<aem::Capsule<void>> children;
    for (int i = 0; i < 5; ++i) {
      auto child = aem::spawn([] {}, {.priority = aem::Priority{3}});
      REQUIRE(child);
      children.push_back(std::move(*child));
    }
    const aem::CoreMetrics queued = snapshot();  // the critical root keeps the core: all wait
    CHECK(queued.capsules_spawned == before.capsules_spawned + 5);
    CHECK(queued.capsules_live == before.capsules_live + 5);
    CHECK(queued.capsules_live + queued.capsules_pooled == before.capsules_live + before.capsules_pooled);
    CHECK(queued.tasks_live == before.tasks_live + 5);
    CHECK(queued.ready_capsules[3] == before.ready_capsules[3] + 5);
    for (auto& child : children) child.join();
    const aem::CoreMetrics after = snapshot();
    CHECK(after.ready_capsules[3] == before.ready_capsules[3]);
    CHECK(after.tasks_live == before.tasks_live);
    CHECK(after.capsules_live == before.capsules_live);
  });
}

TEST_CASE("metrics: activations, deliveries, queued and lost events by priority") {
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([] {
    const unsigned high = static_cast<unsigned>(aem::Priority::high);
    const aem::CoreMetrics before = snapshot();
    int handled = 0;
    std::uint64_t lost_notices = 0;
    auto id = aem::on_event([&] { ++handled; },
                            {.priority = aem::Priority::high,
                             .exec = aem::Executor::keepalive,
                             .queue_bound = 4,
                             .on_lost = [&](aem::Lost lost) { lost_notices += lost.count; }});
    REQUIRE(id);
    REQUIRE(aem::ctl(*id).disable());
    for (int i = 0; i < 6; ++i) REQUIRE(aem::trigger(*id));  // 4 queue, 2 are lost at the bound
    const aem::CoreMetrics queued = snapshot();
    CHECK(queued.activations[high] - before.activations[high] == 6);
    CHECK(queued.pending_activations[high] == 4);
    CHECK(queued.lost_events[high] - before.lost_events[high] == 2);
    CHECK(queued.deliveries[high] == before.deliveries[high]);
    REQUIRE(aem::ctl(*id).enable());
    while (handled < 4 || lost_notices < 2) aem::this_capsule::yield();
    const aem::CoreMetrics after = snapshot();
    CHECK(after.deliveries[high] - before.deliveries[high] == 4);
    CHECK(after.pending_activations[high] == 0);
    REQUIRE(aem::ctl(*id).cancel());
  });
}

TEST_CASE("metrics: Runtime::metrics reads every core from a plain thread, from a capsule and after the stop") {
  aem::Runtime rt(aem_test::config_for(2));
  REQUIRE(rt.start());
  aem::Semaphore gate(0);
  constexpr int kParked = 4;
  std::vector<aem::Capsule<void>> parked = rt.submit(1, [&] {
                                             std::vector<aem::Capsule<void>> capsules;
                                             for (int i = 0; i < kParked; ++i) {
                                               auto c = aem::spawn([&] { gate.acquire(); });
                                               REQUIRE(c);
                                               capsules.push_back(std::move(*c));
                                             }
                                             return capsules;
                                           }).get();
  // Core 1 may be asleep in the kernel: the read wakes it for its gauges.
  const std::vector<aem::CoreMetrics> from_thread = rt.metrics();
  REQUIRE(from_thread.size() == 2);
  for (unsigned i = 0; i < 2; ++i) CHECK(from_thread[i].core == i);
  CHECK(from_thread[1].loop_turns > 0);  // core 0 may not have begun its first turn yet
  CHECK(from_thread[1].tasks_live == kParked);
  CHECK(from_thread[1].capsules_live >= kParked);
  CHECK(from_thread[1].capsules_spawned >= kParked + 1);

  const std::vector<aem::CoreMetrics> from_capsule = rt.submit(0, [&] { return rt.metrics(); }).get();
  REQUIRE(from_capsule.size() == 2);
  CHECK(from_capsule[1].tasks_live == kParked);
  CHECK(from_capsule[0].tasks_live == 1);  // the capsule reading
  CHECK(from_capsule[1].loop_turns >= from_thread[1].loop_turns);

  rt.submit(1, [&] {
      gate.release(kParked);
      for (auto& c : parked) c.join();
    }).get();
  rt.stop();
  const std::vector<aem::CoreMetrics> stopped = rt.metrics();
  REQUIRE(stopped.size() == 2);
  for (unsigned i = 0; i < 2; ++i) {
    CHECK(stopped[i].tasks_live == 0);
    CHECK(stopped[i].loop_turns >= from_capsule[i].loop_turns);
    CHECK(stopped[i].capsules_spawned >= from_capsule[i].capsules_spawned);
  }
}

TEST_CASE("metrics: a capsule spinning on yield alone on a server's core still lets a reader through") {
  aem::Runtime rt(aem_test::config_for(1));
  REQUIRE(rt.start());
  std::atomic<bool> spinning{false};
  std::atomic<bool> read{false};
  // The core keeps an idle multishot accept in flight, so the loop has nothing from the kernel
  // to do; the capsule yields with nobody else ready. The reader's request alone must make it
  // hand the core to the loop, or the reader would wait until the spinner gave up.
  std::future<bool> spinner = rt.submit(0, [&] {
    auto listener = aem::TcpListener::bind(aem::SocketAddress::ipv4_loopback(0));
    if (!listener) return false;
    auto accepting = aem::on_accept(*listener, [](aem::TcpStream) {});
    if (!accepting) return false;
    spinning = true;
    const auto give_up = std::chrono::steady_clock::now() + 20s;
    while (!read && std::chrono::steady_clock::now() < give_up) aem::this_capsule::yield();
    (void)aem::cancel(*accepting);
    return read.load();
  });
  while (!spinning && spinner.wait_for(1ms) != std::future_status::ready) {
  }
  const std::vector<aem::CoreMetrics> metrics = rt.metrics();
  read = true;
  CHECK(metrics.size() == 1);
  CHECK(spinner.get());  // the read was served while the capsule still spun
  rt.stop();
}

TEST_CASE("metrics: sleeping in the kernel counts as idle time") {
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([] {
    const aem::CoreMetrics before = snapshot();
    // Nothing else to do: the core sleeps until the timer. A core thread that the OS preempts
    // past the deadline finds the timer due and never sleeps, so a loaded machine gets retries.
    for (int i = 0; i < 50 && snapshot().idle_ns == before.idle_ns; ++i) aem::this_capsule::sleep_for(2ms);
    CHECK(snapshot().idle_ns > before.idle_ns);
  });
}

TEST_CASE("metrics: arena use and priority boosts") {
  aem::Config config = aem_test::config_for(1);
  aem::Runtime rt(config);
  const std::size_t capacity = rt.config().arena.capacity;
  rt.run([capacity] {
    const aem::CoreMetrics before = snapshot();
    CHECK(before.arena_capacity == capacity);
    {
      aem::Result<aem::EventData> data = aem::this_core::allocate_data(1000);
      REQUIRE(data);
      CHECK(snapshot().arena_bytes_in_use >= before.arena_bytes_in_use + 1000);
    }
    aem::Mutex mutex;
    mutex.lock();
    auto high = aem::spawn(
        [&] {
          mutex.lock();
          mutex.unlock();
        },
        {.priority = aem::Priority::high});
    REQUIRE(high);
    aem::this_capsule::yield();  // the high capsule runs, waits for us and lends us its priority
    CHECK(aem::this_capsule::priority() == aem::Priority::high);
    CHECK(snapshot().priority_boosts == before.priority_boosts + 1);
    mutex.unlock();
    high->join();
  });
}

TEST_CASE("metrics: the Prometheus text follows the exposition grammar and carries the struct's values") {
  SUBCASE("distinct values in every field") {
    std::vector<aem::CoreMetrics> cores(2);
    std::uint64_t next = 1;
    for (unsigned i = 0; i < cores.size(); ++i) {
      aem::CoreMetrics& m = cores[i];
      m.core = i;
      for (const auto& [name, field] : kCounters) m.*field = next++;
      for (const auto& [name, field] : kGauges) m.*field = next++;
      for (const auto& [name, type, field] : kPerPriority) {
        for (auto& value : m.*field) value = next++;
      }
      m.idle_ns = 1'234'567'890ull * (i + 1) + 7;  // seconds with a fraction that needs zero padding
      m.spin_ns = 2'000'000'040ull * (i + 1);
    }
    check_page(aem::to_prometheus(cores), cores);
  }
  SUBCASE("a running runtime's page") {
    aem::Runtime rt(aem_test::config_for(2));
    REQUIRE(rt.start());
    const std::vector<aem::CoreMetrics> cores = rt.metrics();
    check_page(aem::to_prometheus(cores), cores);
    rt.stop();
  }
}
