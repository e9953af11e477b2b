// stop_signals.hpp — StopSignals: why the server stops. SIGINT and SIGTERM, taken as
// aem::on_signal events instead of a handler that interrupts whatever runs, or a successor
// that took the listeners over (--handover).
#pragma once

#include <aem/result.hpp>
#include <aem/wait_group.hpp>

#include <atomic>
#include <cstdint>
#include <memory>

namespace http {

// Stop says why the server stops: a signal, or the successor that took over its listeners.
struct Stop {
  int signo = 0;
  std::int32_t successor = 0;  // a process id
};

class StopSignals {
 public:
  // block blocks SIGINT and SIGTERM for the calling thread and the threads it starts later (the
  // runtime's cores inherit the mask), so that one arriving before take() registers waits for
  // it instead of ending the process. Call before the runtime starts.
  // Errors: the errno of pthread_sigmask.
  static aem::Result<StopSignals> block();

  // take registers SIGINT and SIGTERM with aem::on_signal. Call from a capsule, once, before
  // serving: a signal the runtime reads before the registration is armed has nobody to go to.
  // False if they could not be registered (the error is printed). The StopSignals must outlive
  // the runtime: a signal that arrives while it stops still finds it.
  bool take();

  // handed_over stops the server because process `successor` accepts on its listeners now
  // (aem::HandoverOptions::on_handed_over). Only the first reason counts. Any capsule.
  void handed_over(std::int32_t successor);

  // wait suspends the calling capsule until SIGINT or SIGTERM arrives (after take()) or a
  // successor took over, and says which. Call from a capsule.
  Stop wait();

 private:
  struct State {
    std::atomic<int> signo{0};
    std::atomic<std::int32_t> successor{0};
    std::atomic<bool> stopped{false};
    aem::WaitGroup arrived{1};
  };
  StopSignals() : state_(std::make_unique<State>()) {}
  std::unique_ptr<State> state_;
};

}  // namespace http
