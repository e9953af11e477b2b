// connect_helpers.hpp — peers for the connect tests: a loopback address that drops SYNs, one
// that refuses, and a count of the process's descriptors (to show that no socket leaks).
#pragma once

#include <aem/config.hpp>
#include <aem/net.hpp>

#include <doctest/doctest.h>

#include <dirent.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <system_error>
#include <vector>

namespace aem_test {

// open_descriptors counts the entries of /proc/self/fd.
inline int open_descriptors() {
  DIR* dir = ::opendir("/proc/self/fd");
  REQUIRE(dir != nullptr);
  int count = 0;
  while (::readdir(dir) != nullptr) ++count;
  ::closedir(dir);
  return count;
}

// check_fails_closing_all runs `connect` (a TcpStream::connect) and checks that it fails with
// `expected` and leaves no descriptor behind.
template <typename Connect>
void check_fails_closing_all(std::error_code expected, Connect&& connect) {
  const int before = open_descriptors();
  aem::Result<aem::TcpStream> stream = connect();
  REQUIRE(!stream);
  CHECK(stream.error() == expected);
  CHECK(open_descriptors() == before);
}

// one_core is a one-core Config for the connect tests.
inline aem::Config one_core() {
  aem::Config config;
  config.cores = 1;
  config.capsules_per_core = 16;
  return config;
}

// Unanswered is a loopback listener that drops SYNs: its accept queue (backlog 0) is full of
// connections nobody accepts, so a connect to it neither succeeds nor fails.
struct Unanswered {
  aem::TcpListener listener;
  std::vector<aem::TcpStream> queued;  // the connections filling the accept queue
  aem::SocketAddress address;
};

// make_unanswered connects to a backlog-0 listener until a connect hangs (that one is given
// up after a while). Returns nothing, saying that the test is skipped, where the kernel answers
// every SYN all the same. Call from a capsule.
inline std::optional<Unanswered> make_unanswered() {
  Unanswered hole;
  auto listener = aem::TcpListener::bind(aem::SocketAddress::ipv4_loopback(0), {.backlog = 0});
  REQUIRE(listener);
  hole.listener = std::move(*listener);
  hole.address = hole.listener.local_address().value();
  for (int i = 0; i < 8; ++i) {
    auto stream = aem::TcpStream::connect(hole.address, std::chrono::milliseconds(300));
    if (!stream) {
      REQUIRE(stream.error() == aem::errc::timed_out);
      return hole;
    }
    hole.queued.push_back(std::move(*stream));
  }
  MESSAGE("this kernel answers SYNs beyond a full accept queue: skipped");
  return std::nullopt;
}

// RefusingPort is a loopback TCP port that is bound but not listening: a connect to it is
// refused at once, and the port stays taken while the object lives.
class RefusingPort {
 public:
  RefusingPort() : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    REQUIRE(fd_ >= 0);
    const aem::SocketAddress any_port = aem::SocketAddress::ipv4_loopback(0);
    REQUIRE(::bind(fd_, any_port.data(), any_port.size()) == 0);
    sockaddr_storage storage{};
    socklen_t length = sizeof storage;
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&storage), &length) == 0);
    address_ = aem::SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&storage), length).value();
  }
  RefusingPort(const RefusingPort&) = delete;
  RefusingPort& operator=(const RefusingPort&) = delete;
  ~RefusingPort() { ::close(fd_); }

  const aem::SocketAddress& address() const { return address_; }

 private:
  int fd_;
  aem::SocketAddress address_;
};

}  // namespace aem_test
