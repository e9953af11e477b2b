// stop_signals.hpp — StopSignals: SIGINT and SIGTERM, taken from a signalfd that a capsule
// reads like any other descriptor, instead of a handler that interrupts whatever runs.
#pragma once

#include <aem/result.hpp>

#include <utility>

namespace http {

class StopSignals {
 public:
  // block blocks SIGINT and SIGTERM for the calling thread and the threads it starts later (the
  // runtime's cores inherit the mask) and opens the signalfd. Call before the runtime starts.
  // Errors: the errno of pthread_sigmask or signalfd.
  static aem::Result<StopSignals> block();

  StopSignals(StopSignals&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  StopSignals& operator=(StopSignals&&) = delete;
  ~StopSignals();

  // wait suspends the calling capsule until SIGINT or SIGTERM arrives and returns its number
  // (0 if reading the signalfd failed, e.g. because the runtime stops). Call from a capsule.
  int wait();

 private:
  explicit StopSignals(int fd) noexcept : fd_(fd) {}
  int fd_;
};

}  // namespace http
