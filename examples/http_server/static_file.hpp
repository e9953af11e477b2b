// static_file.hpp — opening the file a GET names under the document root.
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>

namespace http {

// FileHandle owns an open file descriptor.
class FileHandle {
 public:
  FileHandle() noexcept = default;
  explicit FileHandle(int fd) noexcept : fd_(fd) {}
  FileHandle(FileHandle&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  FileHandle& operator=(FileHandle&& other) noexcept;
  FileHandle(const FileHandle&) = delete;
  FileHandle& operator=(const FileHandle&) = delete;
  ~FileHandle();
  int get() const noexcept { return fd_; }

 private:
  int fd_ = -1;
};

// OpenedFile is a regular file ready to be sent, or the status that says why not.
struct OpenedFile {
  std::uint16_t status = 0;  // 0, or 400 / 403 / 404 / 414
  FileHandle file;
  std::uint64_t size = 0;
  std::string_view content_type;
};

// open_static_file resolves `target` (see resolve_target) under the directory `root_fd` and
// opens it for reading; a directory stands for its index.html. Symbolic links are followed
// only while they stay under the root (openat2 RESOLVE_BENEATH; on kernels without openat2
// the lexical check of resolve_target is all). Opening is a plain system call on the core's
// thread (metadata is normally cached) that never waits: the file is opened with O_NONBLOCK
// and then fstat()ed, and anything but a regular file (a FIFO, a device, a directory without
// index.html) is answered 404 before a byte is read. The reads go through the core's io_uring.
OpenedFile open_static_file(int root_fd, std::string_view target) noexcept;

}  // namespace http
