// The timing wheel against a randomized reference model, with several tick sizes and origins.
// Time is synthetic.
#include "support/timer_wheel_helpers.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <vector>

using namespace aem_test::timer_wheel;

// The randomized model: a reference multimap of (deadline -> node) against which every
// report of the wheel is checked.
namespace {

struct ModelRun {
  using Map = std::multimap<TP, std::size_t>;
  std::mt19937_64 rng;
  nanoseconds tick;
  TP origin;
  std::optional<TimerWheel> wheel;
  std::vector<TimerNode> nodes;
  Map model;                             // armed nodes by deadline
  std::vector<Map::iterator> where;
  std::vector<char> armed;               // node is in `model`
  std::vector<std::uint64_t> seq;        // arming sequence number
  std::vector<std::uint64_t> armed_in;   // advance count when armed
  std::vector<std::uint64_t> arm_tick;   // tick_of(now) when armed
  std::uint64_t next_seq = 0;
  std::uint64_t advances = 0;
  TP now;
  bool quiet_callbacks = false;
  std::size_t fired_total = 0;
  std::size_t failures = 0;

  ModelRun(std::uint64_t seed, nanoseconds t, TP o, std::size_t n)
      : rng(seed), tick(t), origin(o), nodes(n), where(n), armed(n), seq(n), armed_in(n),
        arm_tick(n), now(o) {
    wheel.emplace(tick, origin);
  }

  void fail(const char* what, std::size_t i) {
    if (failures++ < 10) FAIL_CHECK(what << " (node " << i << ", advance " << advances << ")");
  }

  // random_deadline draws a deadline covering the past, now, the near ticks and every level
  // up to time_point::max().
  TP random_deadline() {
    const std::uint64_t r = rng() % 100;
    const auto t = static_cast<std::uint64_t>(tick.count());
    std::int64_t off;
    if (r < 5) {
      off = -static_cast<std::int64_t>(rng() % (t * 100));
    } else if (r < 8) {
      off = 0;
    } else if (r < 50) {
      off = static_cast<std::int64_t>(rng() % (t * 130));
    } else if (r < 97) {
      const unsigned bits = static_cast<unsigned>(rng() % 63);
      off = static_cast<std::int64_t>(rng() >> (64 - bits - 1) >> 1);
    } else {
      return kMax - nanoseconds(static_cast<std::int64_t>(rng() % 3));
    }
    const std::int64_t base = now.time_since_epoch().count();
    if (off > 0 && base > std::numeric_limits<std::int64_t>::max() - off) return kMax;
    return TP(nanoseconds(base + off));
  }

  void arm(std::size_t i, TP deadline) {
    wheel->arm(nodes[i], deadline);
    where[i] = model.emplace(deadline, i);
    armed[i] = 1;
    seq[i] = next_seq++;
    armed_in[i] = advances;
    arm_tick[i] = wheel->tick_of(now);
  }

  void forget(std::size_t i) {
    model.erase(where[i]);
    armed[i] = 0;
  }

  void random_cancel() {
    const std::size_t i = rng() % nodes.size();
    const bool was = armed[i] != 0;
    if (wheel->cancel(nodes[i]) != was) fail("cancel() result disagrees with the model", i);
    if (was) forget(i);
  }

  void random_arm() {
    const std::size_t i = rng() % nodes.size();
    if (!armed[i]) arm(i, random_deadline());
  }

  void random_advance() {
    const std::uint64_t r = rng() % 100;
    const auto t = static_cast<std::uint64_t>(tick.count());
    std::uint64_t step;
    if (r < 15) {
      step = 0;
    } else if (r < 60) {
      step = rng() % (t * 3);
    } else if (r < 98) {
      const unsigned bits = static_cast<unsigned>(rng() % 40);
      step = (rng() >> (64 - bits - 1) >> 1) * (1 + t / 64);
    } else {
      step = rng() >> (rng() % 64);  // huge jumps, possibly to the end of time
    }
    const std::int64_t base = now.time_since_epoch().count();
    const std::uint64_t room =
        static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) - static_cast<std::uint64_t>(base);
    if (step > room)
      now = kMax;
    else
      now = TP(nanoseconds(static_cast<std::int64_t>(static_cast<std::uint64_t>(base) + step)));
    advance();
  }

  void advance() {
    ++advances;
    std::uint64_t last_tick = 0;
    std::uint64_t last_seq = 0;
    bool first = true;
    std::size_t reported_here = 0;
    const std::size_t reported = wheel->advance(now, [&](TimerNode& n) {
      const auto i = static_cast<std::size_t>(&n - nodes.data());
      ++reported_here;
      if (n.armed()) fail("reported while still armed", i);
      if (!armed[i]) return fail("reported but not armed (cancelled or duplicate)", i);
      if (n.deadline > now) fail("reported before its deadline", i);
      if (armed_in[i] == advances) fail("armed by a callback and reported in the same advance", i);
      // Order: by tick, FIFO within a tick; the tick is the deadline's, raised only for
      // deadlines already in the past when armed.
      if (!first && (n.tick < last_tick || (n.tick == last_tick && seq[i] < last_seq)))
        fail("reported out of order", i);
      const std::uint64_t own = wheel->tick_of(n.deadline);
      if (n.tick < own || n.tick > std::max(own, arm_tick[i])) fail("unexpected tick", i);
      first = false;
      last_tick = n.tick;
      last_seq = seq[i];
      forget(i);
      ++fired_total;
      if (quiet_callbacks) return;
      // Callbacks exercise re-arming and cancelling.
      const std::uint64_t r = rng() % 100;
      if (r < 10) {
        arm(i, r < 3 ? now : random_deadline());  // re-arm itself, maybe already due
      } else if (r < 20) {
        random_cancel();  // may cancel a node due later in this same advance
      } else if (r < 25) {
        random_arm();
      }
    });
    if (reported != reported_here) fail("advance() return value", reported);
    // Unless a callback armed a due node, the core loop may sleep past `now` right away.
    if ((model.empty() || model.begin()->first > now) && wheel->next_wakeup() <= now && now != kMax)
      fail("next_wakeup() <= now after advance(now) with nothing due", 0);
    // Every node armed before this advance with deadline <= now must have been reported.
    for (auto it = model.begin(); it != model.end() && it->first <= now; ++it)
      if (armed_in[it->second] != advances) fail("due node not reported", it->second);
    check_summary();
  }

  void check_summary() {
    if (wheel->size() != model.size()) fail("size() disagrees with the model", model.size());
    if (model.empty()) {
      if (wheel->next_wakeup() != kMax) fail("next_wakeup() of an empty wheel is not max()", 0);
    } else if (wheel->next_wakeup() > model.begin()->first) {
      fail("next_wakeup() later than the earliest deadline", model.begin()->second);
    }
  }

  // drain advances to the end of time with callbacks that arm nothing.
  void drain() {
    quiet_callbacks = true;
    now = kMax;
    advance();
    advance();  // nodes re-armed by the previous pass
    quiet_callbacks = false;
    if (!model.empty()) fail("nodes left after advance(max)", model.begin()->second);
  }

  void run(std::size_t ops) {
    for (std::size_t k = 0; k < ops && failures == 0; ++k) {
      const std::uint64_t r = rng() % 100;
      if (r < 45)
        random_arm();
      else if (r < 65)
        random_cancel();
      else
        random_advance();
      if (now == kMax) {  // the end of time: drain, then start over with a fresh wheel
        drain();
        now = origin;
        wheel.emplace(tick, origin);
      }
    }
  }
};

void run_model(std::uint64_t seed, nanoseconds tick, TP origin, std::size_t nodes, std::size_t ops) {
  ModelRun m(seed, tick, origin, nodes);
  m.run(ops);
  m.drain();
  CHECK(m.failures == 0);
  CHECK(m.model.empty());
  CHECK(m.wheel->empty());
  MESSAGE("seed " << seed << ": " << m.fired_total << " reports over " << m.advances << " advances");
}

}  // namespace

TEST_CASE("timer_wheel: randomized model, 50 us ticks") {
  run_model(1, std::chrono::microseconds(50), at_ns(1'000'000'000), 2048, 400'000);
}

TEST_CASE("timer_wheel: randomized model, 1 ns ticks") {
  run_model(2, nanoseconds(1), at_ns(0), 512, 300'000);
}

TEST_CASE("timer_wheel: randomized model, odd tick and negative origin") {
  run_model(3, nanoseconds(7777), at_ns(-5'000'000'000'000), 4096, 300'000);
}

TEST_CASE("timer_wheel: randomized model, few nodes (sparse slots)") {
  run_model(4, std::chrono::microseconds(50), at_ns(0), 16, 300'000);
}
