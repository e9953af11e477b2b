// Fault injection: the library's own allocations and mappings (guarded stacks, the arena's
// region, its fallback heap, receive buffers, io_uring SQEs) fail one at a time — the k-th
// operation of a scenario for every k — and each failure must be reported as a clear error
// (or absorbed where the runtime has a way around it), nothing may hang, and the runtime must
// go on serving. Leaks are the ASan build's business (its leak check runs at exit).
#include "support/net_helpers.hpp"

#include <aem/capsule.hpp>
#include <aem/detail/fault_injection.hpp>
#include <aem/error.hpp>
#include <aem/error_event.hpp>
#include <aem/metrics.hpp>
#include <aem/net.hpp>
#include <aem/net/events.hpp>
#include <aem/runtime.hpp>
#include <aem/timer.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

namespace {

namespace faults = aem::detail::faults;
using namespace std::chrono_literals;

// Outcome is what one run of the scenario saw.
struct Outcome {
  std::optional<std::error_code> refused;   // the runtime did not start: why
  std::vector<std::error_code> errors;      // every error a call returned or on_error reported
  bool served_first = false;                // spawn + timer + echo worked before/through the fault
  bool served_after = false;                // and again afterwards, with nothing armed
  std::string backend;
  std::uint64_t starvations = 0;            // receives that waited for buffers
};

// mappings counts the lines of /proc/self/maps: the guarded stacks, arena regions and rings
// are mappings, which ASan's leak check does not see.
std::size_t mappings() {
  std::FILE* f = std::fopen("/proc/self/maps", "r");
  if (f == nullptr) return 0;
  std::size_t lines = 0;
  for (int c; (c = std::fgetc(f)) != EOF;) lines += c == '\n';
  std::fclose(f);
  return lines;
}

// nameable: an error the application can name and act on.
bool nameable(const std::error_code& e) {
  if (e.category() == aem::error_category()) {
    return e == aem::errc::map_count_limit || e == aem::errc::out_of_memory || e == aem::errc::resource_limit;
  }
  return e.category() == std::generic_category() && (e.value() == ENOMEM || e.value() == ENOBUFS);
}

// wait_until polls `done` from a capsule for at most `limit`.
template <typename F>
bool wait_until(F&& done, std::chrono::milliseconds limit = 2000ms) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= end) return false;
    aem::this_capsule::sleep_for(200us);
  }
  return true;
}

// spawn_some spawns `n` capsules that are all alive at once (so the pool must grow) and joins
// them; a refused spawn is recorded. Returns whether every spawn ran.
bool spawn_some(Outcome& out, int n) {
  std::vector<aem::Capsule<int>> capsules;
  bool all = true;
  const unsigned cores = aem::this_core::count();
  for (int i = 0; i < n; ++i) {
    auto c = aem::spawn([i] {
      aem::this_capsule::sleep_for(100us);
      return i;
    }, {.core = static_cast<unsigned>(i) % cores});
    if (c) {
      capsules.push_back(std::move(*c));
    } else {
      out.errors.push_back(c.error());
      all = false;
    }
  }
  for (auto& c : capsules) (void)c.join();
  return all;
}

// timer_fires arms a one-shot timer and waits for it.
bool timer_fires(Outcome& out) {
  auto fired = std::make_shared<std::atomic<bool>>(false);
  auto id = aem::after(500us, [fired] { fired->store(true); });
  if (!id) {
    out.errors.push_back(id.error());
    return false;
  }
  return wait_until([&] { return fired->load(); });
}

// echo registers an on_data echo on `server` (retrying once if the registration is refused)
// and checks that `text` comes back to `client`.
bool echo(Outcome& out, aem::TcpStream& client, aem::TcpStream& server, std::optional<aem::EventId>& reg,
          const std::string& text) {
  for (int attempt = 0; !reg && attempt < 2; ++attempt) {
    auto id = aem::on_data(server, [&server](aem::EventData bytes) { (void)server.write_all(bytes.bytes()); });
    if (id) {
      reg = *id;
    } else {
      out.errors.push_back(id.error());
    }
  }
  if (!reg) return false;
  if (auto w = client.write_all(aem_test::as_bytes(text), 2s); !w) {
    out.errors.push_back(w.error());
    return false;
  }
  std::string got;
  std::array<std::byte, 512> buffer{};
  while (got.size() < text.size()) {
    auto n = client.read(buffer, 2s);
    if (!n || *n == 0) {
      if (!n) out.errors.push_back(n.error());
      return false;
    }
    got += aem_test::as_string(std::span(buffer).first(*n));
  }
  return got == text;
}

// With `arena_fails` the arena refuses rather than falling back to the heap: handed-over
// receive buffers are not replaced, and a handler that holds them starves the receive ring.
aem::Config scenario_config(unsigned cores, bool arena_fails = false) {
  aem::Config config;
  config.cores = cores;
  if (arena_fails) config.arena.on_exhaustion = aem::ExhaustionPolicy::fail;
  config.capsules_per_core = 4;  // the scenario's spawns make the pool grow
  config.max_capsules = 64;
  // A small arena that the receive ring fills: event data then comes from the fallback heap.
  config.arena.capacity = 32 << 10;
  config.recv_buffers = 8;
  config.recv_buffer_size = 4096;
  return config;
}

// starve: a handler holds every large receive until the ring runs dry, then lets them go; the
// receive must resume and deliver every byte (receive starvation, then refill).
bool starve(Outcome& out) {
  aem_test::TcpPair pair = aem_test::tcp_pair();
  std::vector<aem::EventData> held;
  std::size_t received = 0;
  auto id = aem::on_data(pair.server, [&](aem::EventData bytes) {
    received += bytes.size();
    held.push_back(std::move(bytes));
  }, {.exec = aem::Executor::keepalive});
  if (!id) {
    out.errors.push_back(id.error());
    return false;
  }
  const std::string text(40 << 10, 's');  // more than the ring's 8 x 4 KiB
  bool ok = true;
  if (auto w = pair.client.write_all(aem_test::as_bytes(text), 2s); !w) {
    out.errors.push_back(w.error());
    ok = false;
  }
  (void)wait_until([&] { return received >= (24 << 10); }, 200ms);  // let the ring run dry
  ok = wait_until([&] {
    held.clear();
    return received == text.size();
  }) && ok;
  (void)aem::cancel(*id);
  return ok;
}

// scenario: spawn + timers + on_error + on_data echo over loopback TCP + receive
// starvation, in a fresh runtime.
// `site_mask`/`k` are armed just before the runtime starts and disarmed once the first round
// is over; the second round checks that the runtime still serves.
Outcome scenario(std::uint32_t site_mask, std::uint64_t k, unsigned cores = 1, bool arena_fails = false) {
  Outcome out;
  aem::Runtime rt(scenario_config(cores, arena_fails));
  faults::arm(site_mask, k);
  try {
    rt.run([&] {
      auto on_error = aem::on_error([&out](const aem::SubsystemError& e) { out.errors.push_back(e.code); });
      if (!on_error) out.errors.push_back(on_error.error());
      aem_test::TcpPair pair = aem_test::tcp_pair();
      std::optional<aem::EventId> reg;
      bool ok = spawn_some(out, 12);
      ok = timer_fires(out) && ok;
      ok = echo(out, pair.client, pair.server, reg, "hello, faults") && ok;
      ok = echo(out, pair.client, pair.server, reg, std::string(3000, 'x')) && ok;
      ok = starve(out) && ok;
      out.served_first = ok;
      faults::disarm();
      bool again = spawn_some(out, 24);
      again = timer_fires(out) && again;
      again = echo(out, pair.client, pair.server, reg, "still serving") && again;
      out.served_after = again;
      if (reg) (void)aem::cancel(*reg);
      if (on_error) (void)aem::cancel(*on_error);
    });
  } catch (const std::system_error& e) {
    out.refused = e.code();
  }
  faults::disarm();
  out.backend = std::string(rt.backend_name());
  for (const aem::CoreMetrics& m : rt.metrics()) out.starvations += m.receive_starvations;
  return out;
}

std::string describe(const Outcome& o) {
  std::string s = "backend=" + o.backend;
  if (o.refused) s += " refused=" + o.refused->message();
  s += " served_first=" + std::to_string(o.served_first) + " served_after=" + std::to_string(o.served_after);
  std::string last;
  int repeats = 0;
  const auto flush = [&] {
    if (repeats > 0) s += " [" + last + (repeats > 1 ? "] x" + std::to_string(repeats) : "]");
  };
  for (const auto& e : o.errors) {
    std::string text = std::string(e.category().name()) + ":" + e.message();
    if (text == last) {
      ++repeats;
      continue;
    }
    flush();
    last = std::move(text);
    repeats = 1;
  }
  flush();
  return s;
}

// The count of mappings must come back exactly after every run. Not under the sanitizers: they
// keep per-thread mappings of their own for each core thread a run starts (ASan's leak check
// covers heap memory there; the normal build covers mappings).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kCheckMappings = false;
#else
constexpr bool kCheckMappings = true;
#endif

// Every k up to kCap, then every kStride-th up to N (and N itself): the count grows with the
// receives and SQEs of the scenario, and each run starts a runtime.
constexpr std::uint64_t kCap = 120;
constexpr std::uint64_t kStride = 7;

void every_k(std::uint32_t site_mask, unsigned cores, bool arena_fails = false) {
  CAPTURE(cores);
  CAPTURE(arena_fails);
  const Outcome clean = scenario(site_mask, 0, cores, arena_fails);
  INFO(describe(clean));
  REQUIRE(!clean.refused);
  REQUIRE(clean.served_first);
  REQUIRE(clean.served_after);
  const std::uint64_t n = faults::count();
  const std::size_t maps_before = mappings();
  MESSAGE("fault injection: mask " << site_mask << ", " << cores << " core(s)" << std::string(arena_fails ? ", arena refuses" : "")
                                    << ": " << n << " operations in the scenario, " << clean.starvations
                                    << " receive starvations");
  if (arena_fails) CHECK(clean.starvations > 0);
  REQUIRE(n > 0);
  const auto step = [n](std::uint64_t k) { return k < kCap || k == n ? k + 1 : std::min(k + kStride, n); };
  std::uint64_t tried = 0;
  std::uint64_t fired = 0;
  for (std::uint64_t k = 1; k <= n; k = step(k)) {
    ++tried;
    CAPTURE(k);
    const Outcome o = scenario(site_mask, k, cores, arena_fails);
    const auto site = static_cast<faults::Site>(faults::failed());
    const std::string site_name = faults::site_name(site);
    CAPTURE(site_name);
    INFO(describe(o));
    // Two cores interleave, and a starving receive retries its refill once per loop turn: a run
    // may do fewer operations than the counting run did, and then nothing failed.
    if (faults::failed() != 0) {
      ++fired;
    } else {
      CHECK(faults::count() < k);
    }
    if (std::getenv("AEM_FAULTS_VERBOSE") != nullptr) {
      MESSAGE("k=" << k << " site=" << site_name << " " << describe(o));
    }
    for (const auto& e : o.errors) CHECK(nameable(e));
    if (o.refused) {
      CHECK(nameable(*o.refused));
      // Refused cleanly: a runtime with nothing armed starts and serves.
      const Outcome next = scenario(0, 0, cores, arena_fails);
      CHECK(next.served_after);
    } else {
      CHECK(o.served_after);
    }
    // Nothing mapped stays behind (a leaked stack, region or ring would add lines).
    if (kCheckMappings) CHECK(mappings() <= maps_before);
  }
  MESSAGE("fault injection: " << fired << " of " << tried << " runs failed their k-th operation");
  CHECK(fired * 2 >= tried);  // the scenario repeats closely enough to reach most k
}

}  // namespace

TEST_CASE("faults: the injector is off by default and counts only what it is armed for") {
  CHECK(!faults::hit(faults::Site::stack_map));
  faults::arm(faults::Site::buffer_ring, 2);
  CHECK(!faults::hit(faults::Site::stack_map));  // not armed: not counted
  CHECK(!faults::hit(faults::Site::buffer_ring));
  CHECK(faults::hit(faults::Site::buffer_ring));
  CHECK(!faults::hit(faults::Site::buffer_ring));  // once
  CHECK(faults::count() == 3);
  CHECK(faults::failed() == static_cast<std::uint32_t>(faults::Site::buffer_ring));
  faults::disarm();
  CHECK(!faults::hit(faults::Site::buffer_ring));
  CHECK(faults::count() == 3);
}

TEST_CASE("faults: every site is reached by the scenario, or is absent on this backend") {
  for (faults::Site site : {faults::Site::stack_map, faults::Site::arena_region, faults::Site::fallback_heap,
                            faults::Site::buffer_ring, faults::Site::sqe}) {
    const Outcome o = scenario(static_cast<std::uint32_t>(site), 0);
    INFO(describe(o));
    REQUIRE(o.served_after);
    const std::uint64_t n = faults::count();
    MESSAGE("fault injection: site " << std::string(faults::site_name(site)) << ": " << n << " operations");
    if (site == faults::Site::sqe && o.backend != "io_uring") {
      CHECK(n == 0);
      MESSAGE("fault injection: no SQEs on the " << o.backend << " backend: SQE exhaustion skipped");
      continue;
    }
    CHECK(n > 0);
  }
}

TEST_CASE("faults: failing the k-th allocation or mapping of a scenario, for every k, is reported and survived") {
  for (unsigned cores : {1u, 2u}) every_k(faults::all_sites & ~static_cast<std::uint32_t>(faults::Site::sqe), cores);
}

TEST_CASE("faults: with an arena that refuses instead of falling back, receive starvation and refill survive every k") {
  for (unsigned cores : {1u, 2u}) every_k(faults::all_sites & ~static_cast<std::uint32_t>(faults::Site::sqe), cores, true);
}

TEST_CASE("faults: SQE exhaustion at the k-th submission, for every k, is survived") {
  {
    aem::Runtime probe(scenario_config(1));
    probe.run([] {});
    if (probe.backend_name() != "io_uring") {
      MESSAGE("fault injection: the " << probe.backend_name() << " backend has no SQEs: skipped");
      return;
    }
  }
  for (unsigned cores : {1u, 2u}) every_k(static_cast<std::uint32_t>(faults::Site::sqe), cores);
}
