// stop_signals.cpp — StopSignals.
#include "stop_signals.hpp"

#include <aem/error.hpp>
#include <aem/signal.hpp>

#include <csignal>
#include <cstdio>
#include <cstring>

namespace http {

aem::Result<StopSignals> StopSignals::block() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  if (const int error = ::pthread_sigmask(SIG_BLOCK, &signals, nullptr); error != 0) return aem::errno_code(error);
  return StopSignals();
}

bool StopSignals::take() {
  State& state = *state_;
  for (const int signo : {SIGINT, SIGTERM}) {
    auto id = aem::on_signal(signo, [&state](const aem::SignalInfo& info) {
      if (state.stopped.exchange(true)) return;  // the first reason counts
      state.signo.store(info.signo);
      state.arrived.done();
    });
    if (!id) {
      std::fprintf(stderr, "http_server: on_signal(%s): %s\n", ::strsignal(signo), id.error().message().c_str());
      return false;
    }
  }
  return true;
}

void StopSignals::handed_over(std::int32_t successor) {
  State& state = *state_;
  if (state.stopped.exchange(true)) return;
  state.successor.store(successor);
  state.arrived.done();
}

Stop StopSignals::wait() {
  state_->arrived.wait();
  return Stop{state_->signo.load(), state_->successor.load()};
}

}  // namespace http
