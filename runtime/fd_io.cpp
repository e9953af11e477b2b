#include "runtime/io_wait.hpp"

#include <aem/fd_io.hpp>

#include <cerrno>

namespace aem {
namespace {

// Linux caps one read or write at 0x7ffff000 bytes anyway; a shorter count is a short read.
constexpr std::size_t kMaxTransfer = 0x7ffff000;

// outcome maps a raw result. -ECANCELED means the deadline passed, or the runtime cancelled
// every operation because it is shutting down.
Result<std::size_t> outcome(int res, Deadline deadline) {
  if (res >= 0) return static_cast<std::size_t>(res);
  switch (-res) {
    case ECANCELED: return make_error_code(deadline.expired() ? errc::timed_out : errc::shutting_down);
    case ESHUTDOWN: return make_error_code(errc::shutting_down);
    case EPERM: return make_error_code(errc::not_in_capsule);
    default: return errno_code(-res);
  }
}

Result<std::size_t> transfer(detail::IoOpcode opcode, int fd, const void* data, std::size_t size, std::uint64_t offset,
                             Deadline deadline) {
  detail::IoRequest request;
  request.opcode = opcode;
  request.fd = fd;
  request.buffer = const_cast<void*>(data);
  request.length = size < kMaxTransfer ? size : kMaxTransfer;
  request.offset = offset;
  return outcome(detail::perform(request, deadline), deadline);
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
