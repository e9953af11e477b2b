// fd_shortage.hpp — running a server out of descriptors: clients on a plain thread, made before
// the limit drops, and a descriptor limit that leaves only a few numbers free. Call from a
// capsule of a test that runs in a child process (it changes RLIMIT_NOFILE).
#pragma once

#include <aem/capsule.hpp>
#include <aem/net/address.hpp>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace aem_test {

// OneByteClients makes `count` client sockets on a plain thread at once; after go() each
// connects to `address`, sends one byte and reads the echo; then all close together (a client
// closed earlier would free a number below the limit for the server's next accept, and the
// shortage might never come).
class OneByteClients {
 public:
  OneByteClients(const aem::SocketAddress& address, int count) : address_(address) {
    thread_ = std::thread([this, count] {
      std::vector<int> fds;
      for (int i = 0; i < count; ++i) {
        int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        timeval timeout{20, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
        fds.push_back(fd);
      }
      created_ = true;
      while (!go_) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      for (int fd : fds) (void)::connect(fd, address_.data(), address_.size());
      for (int fd : fds) (void)::write(fd, "x", 1);
      for (int fd : fds) {
        char c;
        if (::read(fd, &c, 1) == 1 && c == 'x') ++echoed_;
      }
      for (int fd : fds) ::close(fd);
      finished_ = true;
    });
    while (!created_) aem::this_capsule::sleep_for(std::chrono::milliseconds(1));
  }
  OneByteClients(const OneByteClients&) = delete;
  OneByteClients& operator=(const OneByteClients&) = delete;
  ~OneByteClients() {
    go_ = true;
    if (thread_.joinable()) thread_.join();
  }

  void go() { go_ = true; }
  // wait_finished waits (letting the core run: joining would block it) until every client has
  // its echo or timed out, and returns how many got it.
  int wait_finished() {
    while (!finished_) aem::this_capsule::sleep_for(std::chrono::milliseconds(1));
    thread_.join();
    return echoed_.load();
  }

 private:
  aem::SocketAddress address_;
  std::atomic<bool> created_{false};
  std::atomic<bool> go_{false};
  std::atomic<bool> finished_{false};
  std::atomic<int> echoed_{0};
  std::thread thread_;
};

// leave_free_descriptors lowers RLIMIT_NOFILE so that only `free` descriptor numbers are left
// (new descriptors take the lowest free numbers below the limit; those above it that exist stay
// usable) and returns the limit to put back, or false in `ok` when setrlimit refused.
inline rlimit leave_free_descriptors(int free, bool& ok) {
  rlimit original{};
  ::getrlimit(RLIMIT_NOFILE, &original);
  int free_seen = 0;
  int limit = 0;
  while (free_seen < free) {
    if (::fcntl(limit, F_GETFD) == -1) ++free_seen;
    ++limit;
  }
  rlimit lowered = original;
  lowered.rlim_cur = static_cast<rlim_t>(limit);
  ok = ::setrlimit(RLIMIT_NOFILE, &lowered) == 0;
  return original;
}

}  // namespace aem_test
