// workload.hpp — the work a bench/ server does per request, the same instructions in every
// server so that only the way requests are scheduled differs: a CPU spin of a fixed number of
// loop iterations (calibrated to microseconds once, by the script, and passed to every server)
// and a sleep standing for a call to a backend. How to sleep is the server's business: a
// thread sleeps in the kernel, a capsule suspends itself.
//
// Flags every server that includes this reads (bench/fiber_vs_thread/README.md):
//   --cpu-us N         microseconds of CPU spin per request (default 0)
//   --sleep-us N       microseconds of sleep per request (default 0)
//   --spin-per-us X    spin iterations per microsecond (default: calibrate at start)
//   --request-bytes N  a request is N bytes (default 64, the load client's message)
//   --calibrate        print {"spin_per_us":X} and exit
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "common.hpp"

namespace aem_load {

// spin runs `iterations` rounds of a xorshift generator: a dependent chain the compiler can
// neither vectorise nor fold, so its cost is the same in every server built by this project.
inline std::uint64_t spin(std::uint64_t iterations) {
  std::uint64_t x = 0x9E3779B97F4A7C15ULL;
  for (std::uint64_t i = 0; i < iterations; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
  }
  return x;
}

// calibrate_spin measures spin iterations per microsecond on the calling thread. The fastest
// of many short rounds is kept: on a shared machine preemption only ever makes a round slower,
// and a round far shorter than a scheduler time slice is likely to run uninterrupted.
inline double calibrate_spin() {
  constexpr std::uint64_t kRoundIterations = 100'000;
  constexpr int kRounds = 200;
  double best_us = 0;
  volatile std::uint64_t sink = 0;
  for (int round = 0; round < kRounds; ++round) {
    const auto start = std::chrono::steady_clock::now();
    sink = sink + spin(kRoundIterations);
    const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
    if (round == 0 || us < best_us) best_us = us;
  }
  return static_cast<double>(kRoundIterations) / std::max(best_us, 1.0);
}

// Workload is what one request costs the server.
struct Workload {
  std::uint64_t spin_iterations = 0;
  std::chrono::microseconds sleep{0};
  std::size_t request_bytes = 64;

  // burn_cpu spins for the request's CPU share. Any thread or capsule.
  void burn_cpu() const {
    static volatile std::uint64_t sink = 0;
    if (spin_iterations > 0) sink = sink + spin(spin_iterations);
  }

  // sleep_thread blocks the calling thread for the request's sleep (the thread baselines).
  void sleep_thread() const {
    if (sleep.count() == 0) return;
    timespec left{static_cast<time_t>(sleep.count() / 1'000'000), static_cast<long>(sleep.count() % 1'000'000) * 1000};
    while (nanosleep(&left, &left) != 0 && errno == EINTR) {
    }
  }
};

// parse_workload reads the flags above from `args`; --calibrate prints and exits here, so
// every server binary can calibrate for the script.
inline Workload parse_workload(Args& args) {
  constexpr long kMaxMicroseconds = 10'000'000;
  constexpr long kMaxRequestBytes = 1 << 20;
  if (args.flag("--calibrate")) {
    std::printf("{\"spin_per_us\":%.3f}\n", calibrate_spin());
    std::exit(EXIT_SUCCESS);
  }
  Workload work;
  const long cpu_us = args.integer("--cpu-us", 0, 0, kMaxMicroseconds);
  work.sleep = std::chrono::microseconds(args.integer("--sleep-us", 0, 0, kMaxMicroseconds));
  work.request_bytes = static_cast<std::size_t>(args.integer("--request-bytes", 64, 1, kMaxRequestBytes));
  double spin_per_us = args.number("--spin-per-us", 0);
  if (cpu_us > 0 && spin_per_us == 0) spin_per_us = calibrate_spin();
  work.spin_iterations = static_cast<std::uint64_t>(static_cast<double>(cpu_us) * spin_per_us);
  return work;
}

// RequestCounter turns a connection's stream of bytes into completed requests of a fixed size,
// so work is done once per request however TCP splits or merges them.
class RequestCounter {
 public:
  explicit RequestCounter(std::size_t request_bytes) : request_bytes_(request_bytes) {}

  // complete accounts for `received` more bytes and returns how many requests they completed.
  std::size_t complete(std::size_t received) {
    pending_ += received;
    const std::size_t done = pending_ / request_bytes_;
    pending_ %= request_bytes_;
    return done;
  }

 private:
  std::size_t request_bytes_;
  std::size_t pending_ = 0;
};

}  // namespace aem_load
