// Regular files on the epoll backend: epoll cannot wait for them, so aem::read / write /
// read_at / write_at of a file run on the blocking pool while the core runs its other capsules
// (on io_uring they stay in the ring: no pool call). Run the binary under both backends.
#include "support/cores.hpp"

#include <aem/capsule.hpp>
#include <aem/fd_io.hpp>
#include <aem/metrics.hpp>
#include <aem/runtime.hpp>

#include <doctest/doctest.h>

#include <array>
#include <cstring>
#include <span>
#include <string_view>

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

namespace {

std::span<const std::byte> bytes(std::string_view s) { return std::as_bytes(std::span(s.data(), s.size())); }

// TempFile is an unlinked temporary file, closed at the end of the scope.
class TempFile {
 public:
  TempFile() {
    char path[] = "/tmp/aem_offload_file_XXXXXX";
    fd_ = ::mkstemp(path);
    REQUIRE(fd_ >= 0);
    ::unlink(path);
  }
  ~TempFile() { ::close(fd_); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
};

std::uint64_t pool_calls() {
  auto m = aem::this_core::metrics();
  REQUIRE(m);
  return m->blocking_calls;
}

}  // namespace

TEST_CASE("offload: regular-file reads and writes run on the pool on the epoll backend") {
  TempFile file;
  const int fd = file.fd();
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([&] {
    const bool on_pool = rt.backend_name() == "epoll";
    const std::uint64_t before = pool_calls();
    std::array<std::byte, 4> buffer{};
    REQUIRE(aem::write_at(fd, bytes("0123456789"), 0));
    auto middle = aem::read_at(fd, buffer, 3);
    REQUIRE(middle);
    CHECK(*middle == 4);
    CHECK(std::memcmp(buffer.data(), "3456", 4) == 0);
    // At the file position: read/write move it, as on a plain descriptor.
    REQUIRE(::lseek(fd, 8, SEEK_SET) == 8);
    auto tail = aem::read(fd, buffer);
    REQUIRE(tail);
    CHECK(*tail == 2);
    CHECK(std::memcmp(buffer.data(), "89", 2) == 0);
    REQUIRE(aem::write(fd, bytes("ab")));
    CHECK(::lseek(fd, 0, SEEK_CUR) == 12);
    // Errors come back as on the core: a read of a write-only descriptor.
    const int write_only = ::open("/dev/null", O_WRONLY);
    REQUIRE(write_only >= 0);
    CHECK_FALSE(aem::read(write_only, buffer));
    ::close(write_only);
    CHECK(pool_calls() - before == (on_pool ? 4u : 0u));
    // A deadline already past: a file transfer that has not started does not start.
    auto late = aem::read_at(fd, buffer, 0, aem::Clock::now() - std::chrono::seconds(1));
    if (on_pool) CHECK(late.error() == aem::make_error_code(aem::errc::timed_out));
  });
}
