#include "runtime/io_wait.hpp"

#include <aem/fd_io.hpp>

namespace aem {
namespace {

// Offset -1 means "the file's current position" to io_uring.
constexpr std::uint64_t kCurrentPosition = ~std::uint64_t{0};

// Linux caps one read or write at 0x7ffff000 bytes anyway; a shorter count is a short read.
constexpr std::size_t kMaxTransfer = 0x7ffff000;

// outcome maps cqe->res. -ECANCELED means our linked timeout fired, or the runtime cancelled
// every operation because it is shutting down.
Result<std::size_t> outcome(int res, Deadline deadline) {
  if (res >= 0) return static_cast<std::size_t>(res);
  switch (-res) {
    case ECANCELED: return make_error_code(deadline.expired() ? errc::timed_out : errc::shutting_down);
    case EPERM: return make_error_code(errc::not_in_capsule);
    default: return errno_code(-res);
  }
}

template <typename Prepare>
Result<std::size_t> perform(Prepare&& prepare, Deadline deadline) {
  detail::IoWait wait;
  int error = 0;
  io_uring_sqe* sqe = detail::io_begin(wait, error);
  if (sqe == nullptr) {
    if (error == -EPERM) return make_error_code(errc::not_in_capsule);
    return make_error_code(errc::shutting_down);
  }
  prepare(sqe);
  return outcome(detail::io_finish(wait, sqe, deadline), deadline);
}

unsigned clamp(std::size_t n) { return static_cast<unsigned>(n < kMaxTransfer ? n : kMaxTransfer); }

}  // namespace

Result<std::size_t> read_at(int fd, std::span<std::byte> buffer, std::uint64_t offset, Deadline deadline) {
  return perform([&](io_uring_sqe* sqe) { io_uring_prep_read(sqe, fd, buffer.data(), clamp(buffer.size()), offset); },
                 deadline);
}

Result<std::size_t> write_at(int fd, std::span<const std::byte> buffer, std::uint64_t offset, Deadline deadline) {
  return perform([&](io_uring_sqe* sqe) { io_uring_prep_write(sqe, fd, buffer.data(), clamp(buffer.size()), offset); },
                 deadline);
}

Result<std::size_t> read(int fd, std::span<std::byte> buffer, Deadline deadline) {
  return read_at(fd, buffer, kCurrentPosition, deadline);
}

Result<std::size_t> write(int fd, std::span<const std::byte> buffer, Deadline deadline) {
  return write_at(fd, buffer, kCurrentPosition, deadline);
}

}  // namespace aem
