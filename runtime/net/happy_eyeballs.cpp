// happy_eyeballs.cpp — connect_first: staggered connection attempts over an address list, all
// in flight from the one calling capsule.
//
// Why not a capsule per attempt: the attempts would need a channel to report back, joins to
// clean up, and capsules from the pool, any of which can fail or be unwound at a shutdown with
// a connect still in flight. Here the calling capsule submits every connect to its core's
// backend itself, each with a completion record in one array of this call, and suspends until
// a completion or the next attempt's timer wakes it. It returns only once every connect it
// submitted has delivered its final completion, so no record is freed under the kernel and
// every losing socket is closed.
#include "runtime/net/happy_eyeballs.hpp"

#include "runtime/fdio/io_result.hpp"
#include "runtime/fdio/io_wait.hpp"
#include "runtime/net/socket_io.hpp"
#include "runtime/sched/core.hpp"
#include "runtime/sched/runtime_impl.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <limits>

namespace aem::detail {
namespace {

struct Race;

// Attempt is one connection attempt. The completion record comes first, so that the backend's
// Completion* converts back to the Attempt.
struct Attempt {
  Completion completion;
  Race* race = nullptr;
  // target is what the kernel reads when the connect starts, possibly after submit returned:
  // it lives here until the final completion.
  SocketAddress target;
  int fd = -1;
  int result = 0;
  bool in_flight = false;
  bool finished = false;  // the completion arrived and has not been looked at yet
};

// Race is the state of one connect_first call. It lives in the calling capsule's frame; the
// completions and the timer touch it on the core's thread while the capsule is suspended.
struct Race {
  Core* core = nullptr;
  CapsuleControl* self = nullptr;
  std::vector<Attempt> attempts;  // sized once: the backend holds pointers into it
  __kernel_timespec deadline_spec{};
  const __kernel_timespec* deadline = nullptr;  // &deadline_spec, or none
  CoreTimer next_attempt;  // fires when the next attempt is due although none failed
  std::size_t started = 0;
  std::size_t in_flight = 0;
  bool timer_fired = false;
  bool suspended = false;

  // wake resumes the capsule if it sleeps; the callbacks may fire several times per sleep.
  void wake() noexcept {
    if (!suspended) return;
    suspended = false;
    Core::wake(self);
  }
  void sleep() noexcept {
    suspended = true;
    core->suspend();
    suspended = false;  // a running capsule must never be woken
  }
};

void on_connect_complete(Completion* completion, int result, std::uint32_t flags) noexcept {
  if ((flags & kCompletionMore) != 0) return;  // a connect is single-shot
  auto* attempt = reinterpret_cast<Attempt*>(completion);
  attempt->result = result;
  attempt->in_flight = false;
  attempt->finished = true;
  --attempt->race->in_flight;
  attempt->race->wake();
}

void on_attempt_timer(CoreTimer* timer) noexcept {
  auto* race = static_cast<Race*>(timer->owner);
  race->timer_fired = true;
  race->wake();
}

__kernel_timespec absolute_timespec(Deadline deadline) noexcept {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_point().time_since_epoch()).count();
  __kernel_timespec spec{};
  spec.tv_sec = ns < 0 ? 0 : ns / 1'000'000'000;
  spec.tv_nsec = ns < 0 ? 0 : ns % 1'000'000'000;
  return spec;
}

// start_attempt opens the socket of attempt `race.started` and submits its connect. Returns
// the error of socket(2), which ends that attempt at once.
std::error_code start_attempt(Race& race) {
  Attempt& attempt = race.attempts[race.started++];
  Result<int> fd = open_socket(attempt.target, SOCK_STREAM);
  if (!fd) return fd.error();
  attempt.fd = *fd;
  IoRequest request;
  request.opcode = IoOpcode::connect;
  request.fd = attempt.fd;
  request.address = const_cast<sockaddr*>(attempt.target.data());
  request.address_size = attempt.target.size();
  attempt.in_flight = true;
  ++race.in_flight;
  race.core->backend().submit(request, &attempt.completion, race.deadline);
  return {};
}

void close_attempt(Attempt& attempt) noexcept {
  if (attempt.fd >= 0) ::close(attempt.fd);
  attempt.fd = -1;
}

}  // namespace

std::vector<SocketAddress> interleave_families(std::span<const SocketAddress> addresses) {
  std::vector<SocketAddress> first;
  std::vector<SocketAddress> other;
  for (const SocketAddress& address : addresses) {
    (address.family() == addresses.front().family() ? first : other).push_back(address);
  }
  std::vector<SocketAddress> order;
  order.reserve(addresses.size());
  for (std::size_t i = 0; i < first.size() || i < other.size(); ++i) {
    if (i < first.size()) order.push_back(first[i]);
    if (i < other.size()) order.push_back(other[i]);
  }
  return order;
}

Result<int> connect_first(std::span<const SocketAddress> addresses, Deadline deadline, Duration attempt_delay) {
  if (addresses.empty() || attempt_delay < Duration::zero()) return errc::invalid_argument;
  for (const SocketAddress& address : addresses) {
    if (!is_ip(address)) return errc::invalid_argument;
  }
  Core* core = Core::current_core();
  if (core == nullptr || core->current() == nullptr) return Core::suspension_refused();
  if (core->runtime().stopping()) return errc::shutting_down;
  if (deadline.expired()) return errc::timed_out;

  Race race;
  race.core = core;
  race.self = core->current();
  race.attempts.resize(addresses.size());
  std::vector<SocketAddress> order = interleave_families(addresses);
  for (std::size_t i = 0; i < order.size(); ++i) {
    race.attempts[i].completion.complete = &on_connect_complete;
    race.attempts[i].race = &race;
    race.attempts[i].target = order[i];
  }
  if (!deadline.is_never()) {
    race.deadline_spec = absolute_timespec(deadline);
    race.deadline = &race.deadline_spec;
  }
  race.next_attempt.owner = &race;
  race.next_attempt.fire = &on_attempt_timer;
  TimerWheel& wheel = core->wheel();

  constexpr std::size_t kNone = std::numeric_limits<std::size_t>::max();
  std::size_t winner = kNone;
  std::error_code last_error;
  bool start_next = true;  // the first attempt starts at once
  for (;;) {
    for (std::size_t i = 0; i < race.started && winner == kNone; ++i) {
      Attempt& attempt = race.attempts[i];
      if (!attempt.finished) continue;
      attempt.finished = false;
      if (attempt.result >= 0) {
        winner = i;
        break;
      }
      last_error = io_error(attempt.result, deadline);
      close_attempt(attempt);
      start_next = true;  // a failure starts the next attempt without waiting for the delay
    }
    if (winner != kNone) break;
    if (core->runtime().stopping()) {
      last_error = errc::shutting_down;
      break;
    }
    if (deadline.expired()) {
      last_error = errc::timed_out;
      break;
    }
    const bool more = race.started < race.attempts.size();
    if (!more && race.in_flight == 0) break;  // every attempt failed
    if (more && (start_next || race.timer_fired || race.in_flight == 0)) {
      start_next = false;
      race.timer_fired = false;
      wheel.cancel(race.next_attempt.node);
      if (std::error_code failed = start_attempt(race)) {
        last_error = failed;
        start_next = true;
      } else if (race.started < race.attempts.size()) {
        wheel.arm(race.next_attempt.node, Clock::now() + attempt_delay);
      }
      continue;
    }
    race.sleep();
  }

  // Cancel the attempts still in flight and wait for their final completions: their records
  // are in `race`. A loser that connected meanwhile is closed like the others.
  wheel.cancel(race.next_attempt.node);
  for (std::size_t i = 0; i < race.started; ++i) {
    if (race.attempts[i].in_flight) core->backend().cancel(&race.attempts[i].completion);
  }
  while (race.in_flight > 0) race.sleep();
  for (std::size_t i = 0; i < race.started; ++i) {
    if (i != winner) close_attempt(race.attempts[i]);
  }
  if (winner == kNone) return last_error;
  return race.attempts[winner].fd;
}

}  // namespace aem::detail
