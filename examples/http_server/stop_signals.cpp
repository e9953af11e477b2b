// stop_signals.cpp — StopSignals.
#include "stop_signals.hpp"

#include <aem/error.hpp>
#include <aem/fd_io.hpp>

#include <cerrno>
#include <csignal>
#include <span>
#include <sys/signalfd.h>
#include <unistd.h>

namespace http {

aem::Result<StopSignals> StopSignals::block() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  if (const int error = ::pthread_sigmask(SIG_BLOCK, &signals, nullptr); error != 0) return aem::errno_code(error);
  const int fd = ::signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd < 0) return aem::errno_code(errno);
  return StopSignals(fd);
}

StopSignals::~StopSignals() {
  if (fd_ >= 0) ::close(fd_);
}

int StopSignals::wait() {
  signalfd_siginfo info{};
  const auto n = aem::read(fd_, std::as_writable_bytes(std::span(&info, 1)));
  return n && *n == sizeof info ? static_cast<int>(info.ssi_signo) : 0;
}

}  // namespace http
