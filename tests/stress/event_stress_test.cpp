// Event layer stress: 200 triggered events of mixed executors, priorities and queue bounds on
// every core, a stream of triggers from capsules on every core, and random control operations
// at the same time (disable/enable, set_priority, set_filter, replace_handler, cancel and
// register again). At the end every trigger that succeeded is accounted for exactly:
//   - each payload (tagged with a unique number) reached a handler at most once, and only the
//     handler of the registration it was triggered on;
//   - keepalive and inline registrations saw each producer's payloads in trigger order;
//   - a live registration, once drained: triggers that succeeded == activated ==
//     delivered + filtered + lost, the handler ran `delivered` times, on_lost heard `lost`,
//     the filter refused `filtered`;
//   - a cancelled one (its info taken and the cancel made in one capsule of its core, so
//     nothing runs between): triggers that succeeded == activated at the cancel, and no
//     handler started after it (handler runs == delivered at the cancel).
// Behaviour only, never timing.
#include "support/cores.hpp"
#include "support/event_helpers.hpp"

#include <aem/capsule.hpp>
#include <aem/core_arena.hpp>
#include <aem/cross_core.hpp>
#include <aem/event.hpp>
#include <aem/group.hpp>
#include <aem/runtime.hpp>

#include <doctest/doctest.h>

#include <array>
#include <atomic>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

using namespace std::chrono_literals;
using aem_test::wait_until;

namespace {

constexpr unsigned kSlots = 200;
constexpr unsigned kProducersPerCore = 2;
constexpr unsigned kMaxProducers = 4 * kProducersPerCore;
constexpr unsigned kMaxIncarnations = 6000;  // slots, and their registrations again after a cancel

struct Tag {
  std::uint32_t incarnation;
  std::uint32_t producer;
  std::uint64_t tag;
};

// Incarnation is one registration (a slot's current one, until cancelled and replaced).
struct Incarnation {
  aem::EventId id;
  unsigned core = 0;
  aem::Executor exec = aem::Executor::fresh_capsule;
  std::atomic<std::uint64_t> successes{0};  // triggers on it that returned success
  std::atomic<std::uint64_t> handled{0};    // handler runs
  std::atomic<std::uint64_t> lost_heard{0};
  std::atomic<std::uint64_t> refused{0};  // by the filter
  std::atomic<std::uint64_t> wrong{0};    // a payload of another registration
  std::atomic<std::uint64_t> disordered{0};  // ordered executors: a producer's payloads out of order
  std::array<std::uint64_t, kMaxProducers> last{};  // ordered executors: the last tag + 1 per producer
  bool cancelled = false;
  aem::EventInfo at_cancel;
};

struct World {
  unsigned cores = 0;
  std::vector<std::unique_ptr<Incarnation>> incarnations;
  std::atomic<unsigned> next_incarnation{0};
  std::array<std::atomic<unsigned>, kSlots> current{};  // slot -> incarnation index
  std::vector<std::atomic<std::uint8_t>> seen;           // tag -> handler runs
  std::vector<std::atomic<std::uint32_t>> owner;         // tag -> incarnation + 1 of a successful trigger
  std::atomic<std::uint64_t> next_tag{0};
  std::atomic<std::uint64_t> duplicates{0};

  explicit World(std::size_t tags) : seen(tags), owner(tags) {
    for (unsigned i = 0; i < kMaxIncarnations; ++i) incarnations.push_back(std::make_unique<Incarnation>());
  }
};

// Handler records one run; `variant` only makes replacements distinct objects.
struct Handler {
  World* world;
  Incarnation* self;
  std::uint32_t index;
  int variant;
  void operator()(aem::EventData data) const {
    Tag t{};
    if (data.size() != sizeof t) {
      self->wrong.fetch_add(1);
      return;
    }
    std::memcpy(&t, data.data(), sizeof t);
    if (t.incarnation != index || t.producer >= kMaxProducers) self->wrong.fetch_add(1);
    if (world->seen[t.tag].fetch_add(1) != 0) world->duplicates.fetch_add(1);
    if (self->exec != aem::Executor::fresh_capsule && t.producer < kMaxProducers) {
      if (t.tag + 1 <= self->last[t.producer]) self->disordered.fetch_add(1);
      self->last[t.producer] = t.tag + 1;
    }
    self->handled.fetch_add(1);
    if (self->exec != aem::Executor::inline_handler && (t.tag + static_cast<unsigned>(variant)) % 5 == 0) {
      aem::this_capsule::yield();  // let others in while this activation is running
    }
  }
};

aem::EventFilter filter_for(Incarnation* self) {
  return [self](const aem::ActivationView& view) {
    Tag t{};
    if (view.data.size() == sizeof t) std::memcpy(&t, view.data.data(), sizeof t);
    if (t.tag % 7 == 3) {
      self->refused.fetch_add(1);
      return false;
    }
    return true;
  };
}

// register_slot makes a new incarnation for `slot` on the calling core and publishes it.
void register_slot(World& w, unsigned slot, std::mt19937& rng) {
  const unsigned index = w.next_incarnation.fetch_add(1);
  REQUIRE(index < kMaxIncarnations);
  Incarnation& inc = *w.incarnations[index];
  static constexpr aem::Executor kExecs[] = {aem::Executor::fresh_capsule, aem::Executor::keepalive,
                                             aem::Executor::inline_handler};
  static constexpr std::uint32_t kBounds[] = {2, 8, 64, aem::kDefaultQueueBound};
  inc.exec = kExecs[rng() % 3];
  inc.core = aem::this_core::id();
  aem::EventOptions options{.priority = static_cast<aem::Priority>(rng() % aem::kPriorityLevels),
                            .exec = inc.exec,
                            .queue_bound = kBounds[rng() % 4],
                            .on_lost = [&inc](aem::Lost lost) { inc.lost_heard.fetch_add(lost.count); }};
  auto id = aem::on_event(Handler{&w, &inc, index, 0}, std::move(options));
  REQUIRE(id);
  inc.id = *id;
  w.current[slot].store(index, std::memory_order_release);
}

// producer triggers random slots `count` times.
void producer(World& w, unsigned me, unsigned count) {
  std::mt19937 rng(1000 + me);
  for (unsigned i = 0; i < count; ++i) {
    const unsigned slot = rng() % kSlots;
    const unsigned index = w.current[slot].load(std::memory_order_acquire);
    Incarnation& inc = *w.incarnations[index];
    const std::uint64_t tag = w.next_tag.fetch_add(1);
    REQUIRE(tag < w.seen.size());
    Tag t{index, me, tag};
    auto data = aem::this_core::allocate_data(sizeof t);
    REQUIRE(data);
    std::memcpy(data->data(), &t, sizeof t);
    aem::Result<void> done = (rng() % 4 == 0)
                                 ? aem::trigger(inc.id, std::move(*data), static_cast<aem::Priority>(rng() % aem::kPriorityLevels))
                                 : aem::trigger(inc.id, std::move(*data));
    if (done) {
      w.owner[tag].store(index + 1);
      inc.successes.fetch_add(1);
    } else {
      CHECK(done.error() == aem::errc::stale_event_id);  // cancelled meanwhile
    }
    if (rng() % 16 == 0) aem::this_capsule::yield();
  }
}

// controller runs `count` random control operations on random slots.
void controller(World& w, unsigned me, unsigned count) {
  std::mt19937 rng(2000 + me);
  for (unsigned i = 0; i < count; ++i) {
    const unsigned slot = rng() % kSlots;
    const unsigned index = w.current[slot].load(std::memory_order_acquire);
    Incarnation* inc = w.incarnations[index].get();
    const aem::EventControl ctl = aem::ctl(inc->id);
    aem::Result<void> done;
    switch (rng() % 8) {
      case 0: done = ctl.disable(); break;
      case 1:
      case 2: done = ctl.enable(); break;
      case 3: done = ctl.set_priority(static_cast<aem::Priority>(rng() % aem::kPriorityLevels)); break;
      case 4: done = ctl.set_filter(rng() % 2 == 0 ? filter_for(inc) : aem::EventFilter{}); break;
      case 5: done = ctl.replace_handler(Handler{&w, inc, index, static_cast<int>(rng() % 5)}); break;
      default: {
        // Cancel and register again, on the registration's core: its info and the cancel in one
        // capsule there, so no trigger runs between them.
        const unsigned seed = static_cast<unsigned>(rng());
        auto replaced = aem::submit(inc->core, [&w, inc, slot, seed, index]() -> bool {
          if (w.current[slot].load(std::memory_order_acquire) != index) return false;  // another controller did
          auto info = aem::ctl(inc->id).info();
          REQUIRE(info);
          inc->at_cancel = *info;
          REQUIRE(aem::cancel(inc->id));
          inc->cancelled = true;
          std::mt19937 local(seed);
          register_slot(w, slot, local);
          return true;
        });
        REQUIRE(replaced);
        break;
      }
    }
    if (!done) CHECK(done.error() == aem::errc::stale_event_id);
    if (rng() % 8 == 0) aem::this_capsule::yield();
  }
}

// body runs the whole stress in the calling capsule's group.
void body(World& w, unsigned cores, unsigned producers, unsigned triggers_per_producer, unsigned ops_per_controller);

// run_stress runs it in the default group, or (max_active > 0) in an event group of that
// Policy: every registration is then policed, and the group's counts must come back to zero.
void run_stress(unsigned cores, unsigned triggers_per_producer, unsigned ops_per_controller, std::uint32_t max_active = 0) {
  aem::Config config = aem_test::config_for(cores);
  config.capsules_per_core = 32;
  aem::Runtime rt(config);
  const unsigned producers = cores * kProducersPerCore;
  World w(std::size_t{producers} * triggers_per_producer + 16);
  w.cores = cores;
  rt.run([&] {
    if (max_active == 0) return body(w, cores, producers, triggers_per_producer, ops_per_controller);
    auto group = aem::EventGroup::create({.max_active = max_active});
    REQUIRE(group);
    auto driver = aem::spawn([&] { body(w, cores, producers, triggers_per_producer, ops_per_controller); },
                             {.group = *group});
    REQUIRE(driver);
    driver->join();
    // Every registration was cancelled: the group's counts are all given back.
    CHECK(wait_until([&] { return group->stats().registrations == 0 && group->stats().active == 0; }));
    CHECK(group->stats().capsules == 0);
  });
}

void body(World& w, unsigned cores, unsigned producers, unsigned triggers_per_producer, unsigned ops_per_controller) {
  {
    // The slots, spread over the cores.
    for (unsigned slot = 0; slot < kSlots; ++slot) {
      const unsigned core = slot % cores;
      auto made = aem::submit(core, [&w, slot] {
        std::mt19937 rng(slot);
        register_slot(w, slot, rng);
        return true;
      });
      REQUIRE(made);
    }
    std::atomic<unsigned> finished{0};
    for (unsigned p = 0; p < producers; ++p) {
      REQUIRE(aem::post(p % cores, [&w, &finished, p, triggers_per_producer] {
        producer(w, p, triggers_per_producer);
        finished.fetch_add(1);
      }));
    }
    for (unsigned c = 0; c < cores; ++c) {
      REQUIRE(aem::post(c, [&w, &finished, c, ops_per_controller] {
        controller(w, c, ops_per_controller);
        finished.fetch_add(1);
      }));
    }
    REQUIRE(wait_until([&] { return finished.load() == producers + cores; }, 300s));

    // Drain: every live registration enabled, until nothing is queued or running.
    const unsigned made = w.next_incarnation.load();
    for (unsigned i = 0; i < made; ++i) {
      Incarnation& inc = *w.incarnations[i];
      if (!inc.cancelled) REQUIRE(aem::ctl(inc.id).enable());
    }
    REQUIRE(wait_until(
        [&] {
          for (unsigned i = 0; i < made; ++i) {
            Incarnation& inc = *w.incarnations[i];
            if (inc.cancelled) continue;
            auto info = aem::ctl(inc.id).info();
            if (!info || info->queued != 0 || info->running != 0) return false;
          }
          return true;
        },
        60s));

    std::uint64_t handled_total = 0;
    std::uint64_t lost_total = 0;
    std::uint64_t filtered_total = 0;
    std::uint64_t succeeded_total = 0;
    unsigned cancelled = 0;
    for (unsigned i = 0; i < made; ++i) {
      Incarnation& inc = *w.incarnations[i];
      CAPTURE(i);
      CAPTURE(static_cast<int>(inc.exec));
      CHECK(inc.wrong.load() == 0);
      CHECK(inc.disordered.load() == 0);
      handled_total += inc.handled.load();
      lost_total += inc.lost_heard.load();
      filtered_total += inc.refused.load();
      succeeded_total += inc.successes.load();
      if (inc.cancelled) {
        ++cancelled;
        const aem::EventInfo& at = inc.at_cancel;
        CHECK(inc.successes.load() == at.activated);
        CHECK(inc.handled.load() == at.delivered);
        CHECK(inc.refused.load() == at.filtered);
        CHECK(at.delivered + at.filtered + at.lost <= at.activated);
        CHECK(inc.lost_heard.load() <= at.lost);
        CHECK_FALSE(aem::ctl(inc.id).info());
        continue;
      }
      auto info = aem::ctl(inc.id).info();
      REQUIRE(info);
      CHECK(inc.successes.load() == info->activated);
      CHECK(info->activated == info->delivered + info->filtered + info->lost);
      CHECK(inc.handled.load() == info->delivered);
      CHECK(inc.refused.load() == info->filtered);
      CHECK(inc.lost_heard.load() == info->lost);
      CHECK(aem::cancel(inc.id));
    }
    CHECK(w.duplicates.load() == 0);
    // Every payload a handler saw came from a trigger that succeeded on that registration.
    std::uint64_t seen_total = 0;
    std::uint64_t orphans = 0;
    for (std::size_t tag = 0; tag < w.next_tag.load(); ++tag) {
      const unsigned runs = w.seen[tag].load();
      seen_total += runs;
      if (runs != 0 && w.owner[tag].load() == 0) ++orphans;
    }
    CHECK(orphans == 0);
    CHECK(seen_total == handled_total);
    CHECK(handled_total <= succeeded_total);
    // The run did what it is meant to: most triggers went through, some registrations were
    // replaced, and some activations were delivered.
    CHECK(cancelled > 0);
    CHECK(handled_total > 0);
    MESSAGE("cores=" << cores << " triggers ok=" << succeeded_total << " handled=" << handled_total
                     << " lost=" << lost_total << " filtered=" << filtered_total << " incarnations=" << made << " cancelled=" << cancelled);
  }
}

}  // namespace

TEST_CASE("event stress: mixed executors, triggers from every core and random ctl: exact accounting (2 cores)") {
  run_stress(2, 30000, 2500);
}

TEST_CASE("event stress: mixed executors, triggers from every core and random ctl: exact accounting (4 cores, oversubscribed)") {
  run_stress(4, 12000, 1200);
}

TEST_CASE("event stress: the same in an event group with max_active 3: its counts come back to zero (2 cores)") {
  run_stress(2, 15000, 1500, 3);
}
