// static_file.cpp — open_static_file.
#include "static_file.hpp"

#include "request_path.hpp"

#include <array>
#include <cerrno>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace http {
namespace {

// kOpenFlags: O_NONBLOCK because opening a FIFO for reading would otherwise wait for a writer,
// and with it the core's thread and every connection on it; what was opened is checked with
// fstat before anything is read (on a regular file O_NONBLOCK changes nothing). O_NOCTTY so
// that a terminal device under the root never becomes the server's controlling terminal.
// No O_NOFOLLOW: symbolic links that stay under the root are followed on purpose.
constexpr int kOpenFlags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;

// open_beneath opens `path` relative to `directory` without leaving it; returns the
// descriptor or -errno.
int open_beneath(int directory, const char* path) noexcept {
  open_how how{};
  how.flags = kOpenFlags;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  const long fd = ::syscall(SYS_openat2, directory, path, &how, sizeof how);
  if (fd >= 0) return static_cast<int>(fd);
  if (errno != ENOSYS) return -errno;
  const int plain = ::openat(directory, path, kOpenFlags);
  return plain >= 0 ? plain : -errno;
}

std::uint16_t status_of(int error) noexcept {
  switch (error) {
    case EXDEV:   // a link that leads out of the root
    case EACCES:
    case EPERM:
    case ELOOP:
      return 403;
    case ENAMETOOLONG:
      return 414;
    default:
      return 404;
  }
}

}  // namespace

FileHandle& FileHandle::operator=(FileHandle&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

FileHandle::~FileHandle() {
  if (fd_ >= 0) ::close(fd_);
}

OpenedFile open_static_file(int root_fd, std::string_view target) noexcept {
  OpenedFile result;
  std::array<char, 4096> path_buffer;  // PATH_MAX, with room for "/index.html" and the NUL
  constexpr std::string_view kIndex = "index.html";
  const ResolvedPath resolved = resolve_target(target, std::span(path_buffer).first(path_buffer.size() - kIndex.size() - 2));
  if (resolved.status != 0) {
    result.status = resolved.status;
    return result;
  }
  std::size_t length = resolved.path.size();
  path_buffer[length] = '\0';
  const char* path = length == 0 ? "." : path_buffer.data();
  int fd = open_beneath(root_fd, path);
  if (fd < 0) {
    result.status = status_of(-fd);
    return result;
  }
  FileHandle file(fd);
  struct stat info {};
  if (::fstat(file.get(), &info) != 0) {
    result.status = 404;
    return result;
  }
  std::string_view name = resolved.path;
  if (S_ISDIR(info.st_mode)) {
    fd = open_beneath(file.get(), kIndex.data());
    if (fd < 0) {
      result.status = status_of(-fd);
      return result;
    }
    file = FileHandle(fd);
    if (::fstat(file.get(), &info) != 0) {
      result.status = 404;
      return result;
    }
    name = kIndex;
  } else if (resolved.wants_directory) {
    result.status = 404;  // "/file.txt/" names a directory that is not there
    return result;
  }
  if (!S_ISREG(info.st_mode)) {
    // Devices, FIFOs and directories (without an index.html) are not documents; a socket
    // cannot even be opened (ENXIO: 404 above).
    result.status = 404;
    return result;
  }
  result.file = std::move(file);
  result.size = static_cast<std::uint64_t>(info.st_size);
  result.content_type = content_type(name);
  return result;
}

}  // namespace http
