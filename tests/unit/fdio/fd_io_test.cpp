#include "support/cores.hpp"

#include <aem/capsule.hpp>
#include <aem/fd_io.hpp>
#include <aem/runtime.hpp>

#include <doctest/doctest.h>

#include <array>
#include <cstring>
#include <fcntl.h>
#include <string_view>
#include <unistd.h>

using namespace std::chrono_literals;

namespace {

std::span<const std::byte> bytes(std::string_view s) { return std::as_bytes(std::span(s.data(), s.size())); }

}  // namespace

TEST_CASE("fd io: a read suspends the capsule until another capsule writes") {
  for (unsigned cores : aem_test::kCoreCounts) {
    CAPTURE(cores);
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    aem::Runtime rt(aem_test::config_for(cores));
    rt.run([&, cores] {
      auto reader = aem::spawn([&] {
        std::array<std::byte, 64> buffer{};
        auto n = aem::read(fds[0], buffer);
        REQUIRE(n);
        return std::string(reinterpret_cast<const char*>(buffer.data()), *n);
      });
      auto writer = aem::spawn([&] { return aem::write(fds[1], bytes("hello")); }, {.core = cores - 1});
      REQUIRE(reader);
      REQUIRE(writer);
      CHECK(writer->join().value() == 5);
      CHECK(reader->join() == "hello");
    });
    ::close(fds[0]);
    ::close(fds[1]);
  }
}

TEST_CASE("fd io: a deadline cancels the read in the kernel and loses no data") {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([&] {
    std::array<std::byte, 8> buffer{};
    auto timed_out = aem::read(fds[0], buffer, 2ms);
    CHECK(timed_out.error() == aem::errc::timed_out);
    // The cancelled read consumed nothing: the next read gets all of it.
    REQUIRE(aem::write(fds[1], bytes("abc")));
    auto n = aem::read(fds[0], buffer, 1s);
    REQUIRE(n);
    CHECK(*n == 3);
    CHECK(std::memcmp(buffer.data(), "abc", 3) == 0);
  });
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST_CASE("fd io: errors come back as error codes") {
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([] {
    std::array<std::byte, 8> buffer{};
    CHECK(aem::read(-1, buffer).error() == std::errc::bad_file_descriptor);
    CHECK(aem::write(12345, bytes("x")).error() == std::errc::bad_file_descriptor);
  });
  std::array<std::byte, 8> buffer{};
  CHECK(aem::read(0, buffer).error() == aem::errc::not_in_capsule);
}

TEST_CASE("fd io: read_at and write_at address a file by offset") {
  char path[] = "/tmp/aem_fd_io_XXXXXX";
  const int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  ::unlink(path);
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([&] {
    REQUIRE(aem::write_at(fd, bytes("0123456789"), 0));
    std::array<std::byte, 4> buffer{};
    auto n = aem::read_at(fd, buffer, 3);
    REQUIRE(n);
    CHECK(*n == 4);
    CHECK(std::memcmp(buffer.data(), "3456", 4) == 0);
  });
  ::close(fd);
}
