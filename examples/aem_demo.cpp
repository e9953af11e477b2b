// aem_demo — a one-minute tour of what capsules buy you, measured against plain threads on
// this machine, right now. Run: make demo
//
//   1. 10,000 concurrent blocking-style tasks (each sleeps, then answers): capsules vs threads.
//   2. A value to another core and back: aem::submit vs two threads and a condition variable.
//   3. Priority dispatch: timer handlers on a core flooded with low-priority work.
#include <aem/capsule.hpp>
#include <aem/cross_core.hpp>
#include <aem/runtime.hpp>
#include <aem/timer.hpp>

#include "thread_ping_pong.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

long resident_kib() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * 4;
}

constexpr auto kSleep = 20ms;

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }
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
  std::printf("  %-34s %14s %14s %9s\n", "", "aem capsules", "std::thread", "ratio");
  for (const Row& r : rows) {
    std::printf("  %-34s %11.1f %-2s %11.1f %-2s %8.2fx\n", r.what.c_str(), r.capsules, r.unit, r.threads, r.unit,
                r.threads / r.capsules);
  }
}

// 1 ------------------------------------------------------------------------------------------
void many_blocking_tasks(unsigned cores) {
  constexpr int kTasks = 10'000;

  aem::Config config;
  config.cores = cores;
  config.stack_size = 32 * 1024;
  config.capsules_per_core = kTasks / cores + 64;
  config.max_capsules = kTasks + 64;
  const long rss_before_capsules = resident_kib();
  aem::Runtime rt(config);
  Clock::duration capsule_time{};
  long capsule_rss = 0;
  long checksum = rt.run([&] {
    const auto t0 = Clock::now();
    std::vector<aem::Capsule<long>> tasks;
    tasks.reserve(kTasks);
    for (int i = 0; i < kTasks; ++i) {
      auto c = aem::spawn(
          [i] {
            aem::this_capsule::sleep_for(kSleep);
            return static_cast<long>(i);
          },
          {.core = static_cast<unsigned>(i) % aem::this_core::count()});
      tasks.push_back(std::move(c.value()));
    }
    capsule_rss = resident_kib() - rss_before_capsules;
    long sum = 0;
    for (auto& t : tasks) sum += t.join();
    capsule_time = Clock::now() - t0;
    return sum;
  });

  const long rss_before_threads = resident_kib();
  long thread_rss = 0;
  std::atomic<long> thread_sum{0};
  const auto t0 = Clock::now();
  std::vector<std::thread> threads;
  threads.reserve(kTasks);
  bool spawned_all = true;
  for (int i = 0; i < kTasks; ++i) {
    try {
      threads.emplace_back([i, &thread_sum] {
        std::this_thread::sleep_for(kSleep);
        thread_sum += i;
      });
    } catch (const std::system_error&) {
      spawned_all = false;
      break;
    }
  }
  thread_rss = resident_kib() - rss_before_threads;
  for (auto& t : threads) t.join();
  const auto thread_time = Clock::now() - t0;

  const bool same = checksum == thread_sum.load() && spawned_all;
  print_table("1. 10,000 concurrent tasks that each block for 20 ms, then answer",
              {{"wall time, spawn to last answer", ms(capsule_time), ms(thread_time), "ms"},
               {"memory while all are blocked", capsule_rss / 1024.0, thread_rss / 1024.0, "MB"}});
  std::printf("  (answers agree: %s; capsules get a 32 KiB stack each, threads 8 MiB of address space)\n",
              same ? "yes" : "NO");
}

// 2 ------------------------------------------------------------------------------------------
void cross_core_round_trips() {
  constexpr int kTrips = 20'000;
  aem::Config config;
  config.cores = 2;
  aem::Runtime rt(config);
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

  print_table("2. A value to another core and back (20,000 round trips)",
              {{"median round trip", us(percentile(capsule_trips, 0.5)), us(percentile(thread_trips, 0.5)), "us"},
               {"99th percentile", us(percentile(capsule_trips, 0.99)), us(percentile(thread_trips, 0.99)), "us"}});
}

// 3 ------------------------------------------------------------------------------------------
void priority_under_flood() {
  aem::Config config;
  config.cores = 1;
  aem::Runtime rt(config);
  struct Lateness {
    std::vector<Clock::duration> high, low;
  };
  Lateness late = rt.run([] {
    Lateness out;
    std::atomic<bool> stop{false};
    // The flood: 50 capsules at low priority that never block, they only yield.
    std::vector<aem::Capsule<void>> flood;
    for (int i = 0; i < 50; ++i) {
      flood.push_back(aem::spawn(
                          [&] {
                            while (!stop) {
                              const auto until = Clock::now() + 20us;
                              while (Clock::now() < until) {
                              }
                              aem::this_capsule::yield();
                            }
                          },
                          {.priority = aem::Priority::low})
                          .value());
    }
    auto measure = [&](aem::Priority p, std::vector<Clock::duration>& into) {
      for (int i = 0; i < 200; ++i) {
        const auto due = Clock::now() + 1ms;
        std::atomic<bool> ran{false};
        auto id = aem::after(1ms, [&, due] {
          into.push_back(Clock::now() - due);
          ran = true;
        }, {.priority = p});
        (void)id;
        while (!ran) aem::this_capsule::sleep_for(200us);
      }
    };
    aem::this_capsule::set_priority(aem::Priority::critical).value();
    measure(aem::Priority::high, out.high);
    measure(aem::Priority::idle, out.low);
    stop = true;
    for (auto& f : flood) f.join();
    return out;
  });
  std::printf("\n3. Timer handlers on a core flooded by 50 busy low-priority capsules (200 timers each)\n");
  std::printf("  %-34s %14s %14s\n", "lateness after the deadline", "high priority", "idle priority");
  std::printf("  %-34s %11.1f us %11.1f us\n", "median", us(percentile(late.high, 0.5)), us(percentile(late.low, 0.5)));
  std::printf("  %-34s %11.1f us %11.1f us\n", "99th percentile", us(percentile(late.high, 0.99)),
              us(percentile(late.low, 0.99)));
}

}  // namespace

int main() {
  const unsigned cores = std::max(1u, std::min(2u, std::thread::hardware_concurrency()));
  std::printf("aem demo — capsules (pooled fibers on io_uring) against threads, on %u core(s)\n", cores);
  many_blocking_tasks(cores);
  cross_core_round_trips();
  priority_under_flood();
  std::printf("\nAll numbers were measured just now on this machine. Reproduce: make demo\n");
  return 0;
}
