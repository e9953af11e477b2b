// aem_demo — two things capsules do that threads cannot do as cheaply, measured against plain
// threads on this machine, right now. `make demo` runs it after its connection sweep
// (scripts/demo.py); it also runs alone.
//
//   - A value to another core and back: aem::submit vs two threads and a condition variable.
//   - Priority dispatch: timer handlers on a core flooded with low-priority work.
//
// Exit status 0 when both ran; a failure to start a runtime or spawn a capsule ends it with a
// message and status 1.
#include <aem/capsule.hpp>
#include <aem/cross_core.hpp>
#include <aem/runtime.hpp>
#include <aem/timer.hpp>

#include "thread_ping_pong.hpp"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

double us(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

template <typename T>
T percentile(std::vector<T> v, double p) {
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))];
}

struct Row {
  std::string what;
  double capsules;
  double threads;
  const char* unit;
};

void print_table(const char* title, const std::vector<Row>& rows) {
  std::printf("\n%s\n", title);
  std::printf("  %-34s %14s %14s %14s\n", "", "aem capsules", "std::thread", "aem / threads");
  for (const Row& r : rows) {
    std::printf("  %-34s %11.1f %-2s %11.1f %-2s %13.2fx\n", r.what.c_str(), r.capsules, r.unit, r.threads, r.unit,
                r.capsules / r.threads);
  }
}

// usable_cpus is how many CPUs this process may run on (taskset, cpusets), which is what the
// runtime pins its cores to — not the machine's CPU count.
unsigned usable_cpus() {
  cpu_set_t set;
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return std::max(1u, std::thread::hardware_concurrency());
  return static_cast<unsigned>(CPU_COUNT(&set));
}

void cross_core_round_trips() {
  constexpr int kTrips = 20'000;
  aem::Runtime rt(aem::Config{.cores = 2});
  std::vector<Clock::duration> capsule_trips = rt.run([&] {
    std::vector<Clock::duration> trips;
    trips.reserve(kTrips);
    long v = 0;
    for (int i = 0; i < kTrips; ++i) {
      const auto t0 = Clock::now();
      v = aem::submit(1, [v] { return v + 1; }).value();
      trips.push_back(Clock::now() - t0);
    }
    return trips;
  });

  std::vector<Clock::duration> thread_trips;
  thread_trips.reserve(kTrips);
  {
    aem_bench::ThreadPingPong pp;
    long v = 0;
    for (int i = 0; i < kTrips; ++i) {
      const auto t0 = Clock::now();
      v = pp.round_trip(v);
      thread_trips.push_back(Clock::now() - t0);
    }
  }

  print_table("A value to another core and back (20,000 round trips)",
              {{"median round trip", us(percentile(capsule_trips, 0.5)), us(percentile(thread_trips, 0.5)), "us"},
               {"99th percentile", us(percentile(capsule_trips, 0.99)), us(percentile(thread_trips, 0.99)), "us"}});
}

// Flood is kFloodCapsules low-priority capsules that never block, only spin and yield: a core
// that always has work. Call from a capsule; the destructor stops and joins them, so no
// capsule outlives the flag it polls, even when the measurement throws.
class Flood {
 public:
  static constexpr int kFloodCapsules = 50;

  Flood() {
    for (int i = 0; i < kFloodCapsules; ++i) {
      capsules_.push_back(aem::spawn([this] { spin(); }, {.priority = aem::Priority::low}).value());
    }
  }
  ~Flood() {
    stop_ = true;
    for (auto& c : capsules_) c.join();
  }
  Flood(const Flood&) = delete;
  Flood& operator=(const Flood&) = delete;

 private:
  void spin() {
    while (!stop_) {
      const auto until = Clock::now() + 20us;
      while (Clock::now() < until) {
      }
      aem::this_capsule::yield();
    }
  }

  std::atomic<bool> stop_{false};
  std::vector<aem::Capsule<void>> capsules_;
};

// timer_lateness registers `count` one-shot 1 ms timers at priority `p`, one at a time, and
// returns how late each handler ran. Call from a capsule.
std::vector<Clock::duration> timer_lateness(aem::Priority p, int count) {
  std::vector<Clock::duration> late;
  for (int i = 0; i < count; ++i) {
    const auto due = Clock::now() + 1ms;
    std::atomic<bool> ran{false};
    // value() throws if the registration fails, rather than waiting for a handler that never runs.
    aem::after(1ms, [&late, &ran, due] {
      late.push_back(Clock::now() - due);
      ran = true;
    }, {.priority = p}).value();
    while (!ran) aem::this_capsule::sleep_for(200us);
  }
  return late;
}

void priority_under_flood() {
  constexpr int kTimers = 200;
  aem::Runtime rt(aem::Config{.cores = 1});
  struct Lateness {
    std::vector<Clock::duration> high, idle;
  };
  const Lateness late = rt.run([] {
    // The measuring capsule outranks the flood, so it registers each timer on time.
    aem::this_capsule::set_priority(aem::Priority::critical).value();
    Flood flood;
    Lateness out;
    out.high = timer_lateness(aem::Priority::high, kTimers);
    out.idle = timer_lateness(aem::Priority::idle, kTimers);
    return out;
  });
  std::printf("\nTimer handlers on a core flooded by %d busy low-priority capsules (%d timers each)\n",
              Flood::kFloodCapsules, kTimers);
  std::printf("  %-34s %14s %14s\n", "lateness after the deadline", "high priority", "idle priority");
  std::printf("  %-34s %11.1f us %11.1f us\n", "median", us(percentile(late.high, 0.5)), us(percentile(late.idle, 0.5)));
  std::printf("  %-34s %11.1f us %11.1f us\n", "99th percentile", us(percentile(late.high, 0.99)),
              us(percentile(late.idle, 0.99)));
}

}  // namespace

int main() {
  const unsigned cpus = usable_cpus();
  try {
    if (cpus >= 2) {
      cross_core_round_trips();
    } else {
      std::printf("\nA value to another core and back: skipped, this process may use only one CPU.\n");
    }
    priority_under_flood();
  } catch (const std::exception& error) {
    std::fprintf(stderr, "aem_demo: %s\n", error.what());
    return 1;
  }
  return 0;
}
