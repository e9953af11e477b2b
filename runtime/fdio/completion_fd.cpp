// completion_fd.cpp — the eventfd behind aem::CompletionFd (include/aem/completion_fd.hpp).
#include <aem/completion_fd.hpp>

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

namespace aem::detail {

Result<ReadinessFd> ReadinessFd::open() noexcept {
  // Non-blocking: lower() must return at once when nothing was raised, and raise() from a
  // capsule must never block its core.
  const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) return errno_code(errno);
  return ReadinessFd(fd);
}

ReadinessFd& ReadinessFd::operator=(ReadinessFd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

ReadinessFd::~ReadinessFd() {
  if (fd_ >= 0) ::close(fd_);
}

void ReadinessFd::raise() const noexcept {
  const std::uint64_t one = 1;
  // The only failure of a valid eventfd is EAGAIN when the counter would pass 2^64 - 2; it is
  // then readable already, which is all a raise is for.
  while (::write(fd_, &one, sizeof one) < 0 && errno == EINTR) {
  }
}

void ReadinessFd::lower() const noexcept {
  std::uint64_t count = 0;
  // EAGAIN means it was not raised: already lowered.
  while (::read(fd_, &count, sizeof count) < 0 && errno == EINTR) {
  }
}

}  // namespace aem::detail
