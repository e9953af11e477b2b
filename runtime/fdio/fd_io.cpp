#include "runtime/fdio/io_result.hpp"
#include "runtime/fdio/io_wait.hpp"

#include <aem/fd_io.hpp>

namespace aem {
namespace {

// Linux caps one read or write at 0x7ffff000 bytes anyway; a shorter count is a short read.
constexpr std::size_t kMaxTransfer = 0x7ffff000;

Result<std::size_t> transfer(detail::IoOpcode opcode, int fd, const void* data, std::size_t size, std::uint64_t offset,
                             Deadline deadline) {
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
