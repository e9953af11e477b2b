// fd_io.hpp — reading and writing file descriptors from a capsule through the core's
// io_uring: the capsule suspends, the thread keeps running other capsules.
#pragma once

#include <aem/export.hpp>
#include <aem/result.hpp>
#include <aem/time.hpp>

#include <cstddef>
#include <cstdint>
#include <span>

namespace aem {

// read reads up to buffer.size() bytes from `fd` (a pipe, socket, eventfd or file at its
// current position) and returns how many it read (0 at end of file). Call from a capsule.
// Errors: errc::timed_out (the deadline passed; nothing was read), errc::not_in_capsule,
// errc::shutting_down, or the errno of the read (std::generic_category).
AEM_EXPORT Result<std::size_t> read(int fd, std::span<std::byte> buffer, Deadline deadline = {});

// write writes up to buffer.size() bytes to `fd` and returns how many it wrote.
// Errors: as read.
AEM_EXPORT Result<std::size_t> write(int fd, std::span<const std::byte> buffer, Deadline deadline = {});

// read_at / write_at are pread / pwrite: at `offset`, without moving the file position.
AEM_EXPORT Result<std::size_t> read_at(int fd, std::span<std::byte> buffer, std::uint64_t offset, Deadline deadline = {});
AEM_EXPORT Result<std::size_t> write_at(int fd, std::span<const std::byte> buffer, std::uint64_t offset,
                                        Deadline deadline = {});

}  // namespace aem
