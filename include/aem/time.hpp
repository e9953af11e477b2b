// time.hpp — the clock aem schedules by, and Deadline, which every blocking call accepts.
#pragma once

#include <chrono>

namespace aem {

using Clock = std::chrono::steady_clock;
using Duration = Clock::duration;
using TimePoint = Clock::time_point;

// Deadline is the point in time after which a blocking call gives up with errc::timed_out.
// It converts implicitly from a relative duration (measured from the moment of conversion) and
// from an absolute Clock::time_point, so `mutex.lock(5ms)` and `mutex.lock(t0 + 5ms)` both work.
//
// Example:
//   if (auto r = channel.receive(250ms); !r) log(r.error().message());
class Deadline {
 public:
  constexpr Deadline() noexcept = default;  // never expires
  Deadline(TimePoint at) noexcept : at_(at) {}  // NOLINT: implicit by design
  template <typename Rep, typename Period>
  Deadline(std::chrono::duration<Rep, Period> in) noexcept  // NOLINT: implicit by design
      : at_(from_now(in)) {}

  // never returns the Deadline that never expires (the default).
  static constexpr Deadline never() noexcept { return Deadline{}; }

  constexpr bool is_never() const noexcept { return at_ == TimePoint::max(); }
  constexpr TimePoint time_point() const noexcept { return at_; }
  bool expired() const noexcept { return !is_never() && Clock::now() >= at_; }

 private:
  // from_now saturates instead of overflowing, so `Deadline(std::chrono::hours::max())` never expires.
  template <typename Rep, typename Period>
  static TimePoint from_now(std::chrono::duration<Rep, Period> in) noexcept {
    const TimePoint now = Clock::now();
    // Compare in floating point: `TimePoint::max() - now` is fine, `now - TimePoint::min()`
    // would overflow.
    const double target = std::chrono::duration<double, std::nano>(in).count() +
                          static_cast<double>(std::chrono::nanoseconds(now.time_since_epoch()).count());
    if (target >= static_cast<double>(std::chrono::nanoseconds(TimePoint::max().time_since_epoch()).count())) {
      return TimePoint::max();
    }
    if (target <= static_cast<double>(std::chrono::nanoseconds(TimePoint::min().time_since_epoch()).count())) {
      return TimePoint::min();
    }
    return now + std::chrono::duration_cast<Duration>(in);
  }

  TimePoint at_ = TimePoint::max();
};

}  // namespace aem
