// idle_memory — what an idle connection costs in each serving style: a capsule per connection,
// an on_data registration with Executor::keepalive, one with Executor::inline_handler. The
// server (this process, one core) accepts N connections from a child process that opens them
// and stays silent, waits until its RSS settles, and prints the RSS growth per connection.
//
//   aem_idle_memory --style capsule|keepalive|inline [--connections 10000]
//
// Kernel socket memory is not in RSS: the figure is the user-space memory of a connection (its
// stack pages, registration, handler, socket object, the allocator's share).
#include <aem/capsule.hpp>
#include <aem/net.hpp>
#include <aem/net/events.hpp>
#include <aem/runtime.hpp>

#include <arpa/inet.h>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <netinet/in.h>
#include <string>
#include <string_view>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace {

using namespace std::chrono_literals;

long rss_kib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.starts_with("VmRSS:")) return std::atol(line.c_str() + 6);
  }
  return -1;
}

// open_clients (in the child) opens `count` connections to `port` and keeps them silent until
// its parent closes the pipe `hold`; it writes one byte to `ready` once all are open.
[[noreturn]] void open_clients(int port, int count, int ready, int hold) {
  std::vector<int> fds;
  fds.reserve(static_cast<std::size_t>(count));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < count; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) std::_Exit(2);
    fds.push_back(fd);
  }
  const char one = 1;
  if (::write(ready, &one, 1) != 1) std::_Exit(3);
  char byte;
  (void)::read(hold, &byte, 1);  // returns when the parent closes its end
  std::_Exit(0);
}

// settle waits until the RSS has not changed over three 100 ms looks; returns it.
long settle() {
  long last = -1;
  for (int same = 0; same < 3;) {
    aem::this_capsule::sleep_for(100ms);
    const long now = rss_kib();
    same = now == last ? same + 1 : 0;
    last = now;
  }
  return last;
}

}  // namespace

int main(int argc, char** argv) {
  std::string_view style = "capsule";
  int connections = 10000;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view arg = argv[i];
    const std::string_view value = argv[i + 1];
    if (arg == "--style") style = value;
    else if (arg == "--connections") std::from_chars(value.data(), value.data() + value.size(), connections);
  }
  if (style != "capsule" && style != "keepalive" && style != "inline") {
    std::fprintf(stderr, "usage: aem_idle_memory --style capsule|keepalive|inline [--connections N]\n");
    return 2;
  }
  rlimit files{};
  ::getrlimit(RLIMIT_NOFILE, &files);
  files.rlim_cur = files.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &files);

  auto listener = aem::TcpListener::bind(aem::SocketAddress::ipv4_loopback(0), {.backlog = 4096});
  if (!listener) return 1;
  const int port = listener->local_address()->port();
  aem::Config config;
  config.cores = 1;
  config.max_capsules = static_cast<std::size_t>(connections) + 1024;
  aem::Runtime rt(config);
  return rt.run([&] {
    std::atomic<int> accepted{0};
    const long before = settle();
    int ready[2], hold[2];
    if (::pipe(ready) != 0 || ::pipe(hold) != 0) return 1;
    const pid_t child = ::fork();
    if (child == 0) {
      ::close(ready[0]);
      ::close(hold[1]);  // else the child's own copy would keep its read below from ending
      open_clients(port, connections, ready[1], hold[0]);
    }
    ::close(ready[1]);
    ::close(hold[0]);
    while (accepted.load() < connections) {
      auto stream = listener->accept(10s);
      if (!stream) return 1;
      accepted.fetch_add(1);
      if (style == "capsule") {
        auto connection = aem::spawn([s = std::move(*stream)]() mutable {
          std::array<std::byte, 4096> buffer;
          while (auto n = s.read(buffer)) {
            if (*n == 0 || !s.write_all(std::span(buffer).first(*n))) return;
          }
        });
        if (!connection) return 1;
        connection->detach();
      } else {
        auto owned = std::make_shared<aem::TcpStream>(std::move(*stream));
        const aem::Executor exec = style == "inline" ? aem::Executor::inline_handler : aem::Executor::keepalive;
        auto id = aem::on_data(
            *owned, [owned](aem::EventData bytes) { (void)owned->send(std::move(bytes)); }, {.exec = exec});
        if (!id) return 1;
      }
    }
    char byte;
    if (::read(ready[0], &byte, 1) != 1) return 1;
    const long after = settle();
    std::printf("style %.*s: %d idle connections, RSS %ld KiB -> %ld KiB, %.0f bytes per connection\n",
                static_cast<int>(style.size()), style.data(), connections, before, after,
                static_cast<double>(after - before) * 1024.0 / connections);
    ::close(hold[1]);  // the child closes its connections and exits
    ::waitpid(child, nullptr, 0);
    return 0;
  });
}
