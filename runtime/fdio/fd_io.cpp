#include "runtime/fdio/io_result.hpp"
#include "runtime/fdio/io_wait.hpp"
#include "runtime/sched/core.hpp"

#include <aem/blocking.hpp>
#include <aem/fd_io.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

namespace aem {
namespace {

// Linux caps one read or write at 0x7ffff000 bytes anyway; a shorter count is a short read.
constexpr std::size_t kMaxTransfer = 0x7ffff000;

// needs_pool tells whether a transfer on `fd` would block the calling core's thread: on the
// epoll backend, which cannot wait for regular files, block devices or directories.
bool needs_pool(int fd) noexcept {
  detail::Core* core = detail::Core::current_core();
  if (core == nullptr || std::strcmp(core->backend().name(), "epoll") != 0) return false;
  struct stat st;
  if (::fstat(fd, &st) != 0) return false;  // the backend reports the error
  return S_ISREG(st.st_mode) || S_ISBLK(st.st_mode) || S_ISDIR(st.st_mode);
}

// transfer_on_pool makes the transfer on the runtime's blocking pool while the capsule waits.
// A deadline removes a transfer that has not started; one that has is waited for (it writes
// the caller's buffer) and its result returned, as a file read in flight on io_uring is.
// Nothing (std::nullopt) when the pool's queue is full: the core then makes the call itself,
// as it did before the pool, rather than fail a file read for want of threads.
std::optional<Result<std::size_t>> transfer_on_pool(detail::IoOpcode opcode, int fd, void* data, std::size_t size,
                                                    std::uint64_t offset, Deadline deadline) {
  auto call = [=]() noexcept -> long {
    const bool here = offset == detail::kCurrentPosition;
    const auto at = static_cast<off_t>(offset);
    ssize_t n;
    do {
      if (opcode == detail::IoOpcode::read) n = here ? ::read(fd, data, size) : ::pread(fd, data, size, at);
      else n = here ? ::write(fd, data, size) : ::pwrite(fd, data, size, at);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : static_cast<long>(n);
  };
  Result<long> done = detail::call_blocking(call, deadline, SourceLocation::current(), detail::BlockingWait::finish);
  if (!done) {
    if (done.error() == errc::blocking_queue_full) return std::nullopt;
    return Result<std::size_t>(done.error());
  }
  if (*done < 0) return Result<std::size_t>(errno_code(static_cast<int>(-*done)));
  return Result<std::size_t>(static_cast<std::size_t>(*done));
}

Result<std::size_t> transfer(detail::IoOpcode opcode, int fd, const void* data, std::size_t size, std::uint64_t offset,
                             Deadline deadline) {
  if (needs_pool(fd)) {
    const std::size_t length = size < kMaxTransfer ? size : kMaxTransfer;
    if (auto done = transfer_on_pool(opcode, fd, const_cast<void*>(data), length, offset, deadline)) return *done;
  }
  detail::IoRequest request;
  request.opcode = opcode;
  request.fd = fd;
  request.buffer = const_cast<void*>(data);
  request.length = size < kMaxTransfer ? size : kMaxTransfer;
  request.offset = offset;
  return detail::io_count(detail::perform(request, deadline), deadline);
}

}  // namespace

Result<std::size_t> read_at(int fd, std::span<std::byte> buffer, std::uint64_t offset, Deadline deadline) {
  return transfer(detail::IoOpcode::read, fd, buffer.data(), buffer.size(), offset, deadline);
}

Result<std::size_t> write_at(int fd, std::span<const std::byte> buffer, std::uint64_t offset, Deadline deadline) {
  return transfer(detail::IoOpcode::write, fd, buffer.data(), buffer.size(), offset, deadline);
}

Result<std::size_t> read(int fd, std::span<std::byte> buffer, Deadline deadline) {
  return read_at(fd, buffer, detail::kCurrentPosition, deadline);
}

Result<std::size_t> write(int fd, std::span<const std::byte> buffer, Deadline deadline) {
  return write_at(fd, buffer, detail::kCurrentPosition, deadline);
}

}  // namespace aem
