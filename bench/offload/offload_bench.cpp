// offload_bench — why aem::blocking exists, end to end. A TCP server on one core has a fast
// route ('f': answer at once) and a slow route ('s': call a function that blocks its thread for
// 2 ms, then answer). One client pings the fast route and records each round trip; then the
// same while flood clients keep the slow route busy, first with the slow function called
// through aem::blocking (the pool), then called directly on the core. The fast route's p99 with
// the flood over its p99 alone shows what the slow route costs the core's other work.
//
//   aem_offload_bench [--seconds S] [--flood N] [--slow-ms M]
//
// Prints one line per scenario (p50, p99, p99.9 of the fast route in microseconds) and the two
// ratios; exits 0 (it measures, it does not judge).
#include <aem/blocking.hpp>
#include <aem/capsule.hpp>
#include <aem/net.hpp>
#include <aem/runtime.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  double seconds = 2.0;
  unsigned flood = 16;
  unsigned slow_ms = 2;
};

enum class SlowCall { pool, direct };

Options parse(int argc, char** argv) {
  Options options;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view flag = argv[i];
    const std::string_view value = argv[i + 1];
    if (flag == "--seconds") options.seconds = std::strtod(argv[i + 1], nullptr);
    else if (flag == "--flood") std::from_chars(value.data(), value.data() + value.size(), options.flood);
    else if (flag == "--slow-ms") std::from_chars(value.data(), value.data() + value.size(), options.slow_ms);
    else {
      std::fprintf(stderr, "usage: %s [--seconds S] [--flood N] [--slow-ms M]\n", argv[0]);
      std::exit(2);
    }
  }
  return options;
}

// serve_connection answers one client's one-byte requests until it closes.
void serve_connection(aem::TcpStream stream, SlowCall slow_call, unsigned slow_ms) {
  (void)stream.set_nodelay(true);
  const auto slow = [slow_ms] { std::this_thread::sleep_for(std::chrono::milliseconds(slow_ms)); };
  char request = 0;
  for (;;) {
    if (!stream.read_exact(std::span(&request, 1))) return;
    if (request == 's') {
      if (slow_call == SlowCall::pool) {
        if (!aem::blocking(slow)) return;
      } else {
        slow();  // blocks the core: every other connection waits
      }
    }
    const char reply = request == 's' ? 'S' : 'F';
    if (!stream.write_all(std::string_view(&reply, 1))) return;
  }
}

// Server runs the one-core runtime on a thread of its own.
class Server {
 public:
  Server(SlowCall slow_call, unsigned slow_ms) {
    aem::Config config;
    config.cores = 1;
    runtime_ = std::make_unique<aem::Runtime>(config);
    std::promise<int> port;
    auto port_ready = port.get_future();
    thread_ = std::thread([this, slow_call, slow_ms, &port] {
      runtime_->run([&] {
        auto listener = aem::TcpListener::bind(aem::SocketAddress::ipv4_loopback(0));
        if (!listener) {
          port.set_value(-1);
          return;
        }
        port.set_value(listener->local_address()->port());
        while (auto stream = listener->accept()) {
          (void)aem::spawn([s = std::move(*stream), slow_call, slow_ms]() mutable {
            serve_connection(std::move(s), slow_call, slow_ms);
          });
        }
      });
    });
    port_ = port_ready.get();
  }
  ~Server() {
    runtime_->stop();
    thread_.join();
  }
  int port() const { return port_; }

 private:
  std::unique_ptr<aem::Runtime> runtime_;
  std::thread thread_;
  int port_ = -1;
};

int connect_to(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    std::perror("connect");
    std::exit(1);
  }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

// ask sends one request byte and waits for the reply.
bool ask(int fd, char request) {
  char reply = 0;
  return ::write(fd, &request, 1) == 1 && ::read(fd, &reply, 1) == 1;
}

struct Percentiles {
  double p50_us = 0, p99_us = 0, p999_us = 0;
  std::size_t samples = 0;
};

// measure pings the fast route for `seconds` while `flood` clients keep the slow route busy.
Percentiles measure(const Options& options, SlowCall slow_call, unsigned flood) {
  Server server(slow_call, options.slow_ms);
  if (server.port() < 0) {
    std::fprintf(stderr, "offload_bench: cannot listen on the loopback\n");
    std::exit(1);
  }
  std::atomic<bool> done{false};
  std::vector<std::thread> flooders;
  for (unsigned i = 0; i < flood; ++i) {
    flooders.emplace_back([&] {
      const int fd = connect_to(server.port());
      while (!done.load(std::memory_order_relaxed) && ask(fd, 's')) {
      }
      ::close(fd);
    });
  }
  const int fd = connect_to(server.port());
  for (int i = 0; i < 100; ++i) ask(fd, 'f');  // warm up
  std::vector<double> rtt_us;
  const auto until = Clock::now() + std::chrono::duration<double>(options.seconds);
  while (Clock::now() < until) {
    const auto start = Clock::now();
    if (!ask(fd, 'f')) break;
    rtt_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
  }
  ::close(fd);
  done.store(true);
  for (auto& t : flooders) t.join();
  std::sort(rtt_us.begin(), rtt_us.end());
  Percentiles p;
  p.samples = rtt_us.size();
  if (!rtt_us.empty()) {
    const auto at = [&](double q) { return rtt_us[std::min(rtt_us.size() - 1, static_cast<std::size_t>(q * rtt_us.size()))]; };
    p.p50_us = at(0.50);
    p.p99_us = at(0.99);
    p.p999_us = at(0.999);
  }
  return p;
}

void print(const char* scenario, const Percentiles& p) {
  std::printf("%-34s samples %8zu   p50 %9.1f us   p99 %9.1f us   p99.9 %9.1f us\n", scenario, p.samples, p.p50_us,
              p.p99_us, p.p999_us);
}

}  // namespace

int main(int argc, char** argv) {
  const Options options = parse(argc, argv);
  std::printf("fast route of a one-core server; %u flood clients calling a %u ms blocking function\n", options.flood,
              options.slow_ms);
  const Percentiles alone = measure(options, SlowCall::pool, 0);
  print("alone", alone);
  const Percentiles pooled = measure(options, SlowCall::pool, options.flood);
  print("flood, slow call on the pool", pooled);
  const Percentiles direct = measure(options, SlowCall::direct, options.flood);
  print("flood, slow call on the core", direct);
  if (alone.p99_us > 0) {
    std::printf("p99 ratio with the flood / alone: pool %.2f (target <= 3), on the core %.2f\n",
                pooled.p99_us / alone.p99_us, direct.p99_us / alone.p99_us);
  }
  return 0;
}
