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
      if (state.signo.exchange(info.signo) == 0) state.arrived.done();  // the first one counts
    });
    if (!id) {
      std::fprintf(stderr, "http_server: on_signal(%s): %s\n", ::strsignal(signo), id.error().message().c_str());
      return false;
    }
  }
  return true;
}

int StopSignals::wait() {
  state_->arrived.wait();
  return state_->signo.load();
}

}  // namespace http
