// backpressure_test.cpp — a stream's send() queue is bounded (Config::send_queue_bound): a peer
// that sends but never reads holds a bounded part of the server's memory, in the registration
// style (the on_data receive pauses) and in the capsule style (send() suspends), and a peer
// that resets ends its connection although output is queued.
#include "support/cores.hpp"
#include "support/net_helpers.hpp"

#include <aem/capsule.hpp>
#include <aem/core_arena.hpp>
#include <aem/event.hpp>
#include <aem/metrics.hpp>
#include <aem/net.hpp>
#include <aem/net/events.hpp>
#include <aem/runtime.hpp>

#include <doctest/doctest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

// kFlood caps what a non-reading client offers: far more than the kernel's buffers of the
// connection hold (both ends' buffers are set small, which also turns autotuning off), so a
// server without backpressure takes it all.
constexpr std::size_t kFlood = 32u << 20;
constexpr int kSocketBuffer = 128 * 1024;

// small_buffers sets `fd`'s send and receive buffers to kSocketBuffer.
void small_buffers(int fd) {
  ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &kSocketBuffer, sizeof kSocketBuffer);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &kSocketBuffer, sizeof kSocketBuffer);
}

// connect_blocking opens a plain-thread client socket to `address`, with small buffers.
int connect_blocking(const aem::SocketAddress& address) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  small_buffers(fd);
  REQUIRE(::connect(fd, address.data(), address.size()) == 0);
  return fd;
}

// flood_until_stalled writes to `fd` (never reading) until the peer stops taking bytes for a
// second or kFlood bytes are out; returns the bytes written.
std::size_t flood_until_stalled(int fd) {
  std::vector<char> chunk(64 * 1024, 'x');
  std::size_t written = 0;
  int stalls = 0;
  while (written < kFlood && stalls < 4) {
    const ssize_t n = ::send(fd, chunk.data(), chunk.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      written += static_cast<std::size_t>(n);
      stalls = 0;
      continue;
    }
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, 250) == 0) ++stalls;
  }
  return written;
}

// reset closes `fd` with an RST instead of a FIN.
void reset(int fd) {
  linger hard{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
  ::close(fd);
}

// arena_bytes is what the calling core's arena (and its fallback heap) holds.
std::uint64_t arena_bytes() {
  auto m = aem::this_core::metrics();
  REQUIRE(m);
  return m->arena_bytes_in_use + m->arena_fallback_bytes;
}

}  // namespace

TEST_CASE("backpressure: an echo registration whose peer never reads holds a bounded queue, and a reset ends it") {
  aem::Config config = aem_test::config_for(1);
  config.send_queue_bound = 256 * 1024;
  aem::Runtime rt(config);
  rt.run([] {
    aem::TcpListener listener = aem_test::loopback_listener();
    auto address = listener.local_address();
    REQUIRE(address);
    auto live = std::make_shared<std::atomic<int>>(0);  // connections whose handler exists
    const std::uint64_t before = arena_bytes();
    std::atomic<std::size_t> written{0};
    std::atomic<bool> flooded{false};
    std::atomic<bool> may_reset{false};
    std::thread client([&] {
      const int fd = connect_blocking(*address);
      written = flood_until_stalled(fd);
      flooded = true;
      while (!may_reset) std::this_thread::sleep_for(1ms);
      reset(fd);
    });
    auto accepted = listener.accept(10s);
    REQUIRE(accepted);
    small_buffers(accepted->fd());
    auto stream = std::make_shared<aem::TcpStream>(std::move(*accepted));
    struct Echo {
      std::shared_ptr<aem::TcpStream> stream;
      std::shared_ptr<std::atomic<int>> live;
      Echo(std::shared_ptr<aem::TcpStream> s, std::shared_ptr<std::atomic<int>> l) : stream(std::move(s)), live(std::move(l)) { ++*live; }
      Echo(Echo&& other) noexcept : stream(std::move(other.stream)), live(std::move(other.live)) {}
      ~Echo() {
        if (live) --*live;
      }
      void operator()(aem::EventData bytes) const { (void)stream->send(std::move(bytes)); }
    };
    auto id = aem::on_data(*stream, Echo(stream, live), {.exec = aem::Executor::keepalive});
    REQUIRE(id);
    stream.reset();  // the registration's handler owns the stream now
    while (!flooded) aem::this_capsule::sleep_for(1ms);
    const std::uint64_t held = arena_bytes() - std::min(arena_bytes(), before);
    MESSAGE("client wrote " << (written.load() >> 10) << " KiB before the server stopped reading; the server's arena holds "
                            << (held >> 10) << " KiB more than before");
    CHECK(written.load() < kFlood / 4);
    // The send queue's bound, the registration's queued activations and the receive ring: a few MiB.
    CHECK(held < (8u << 20));
    REQUIRE(*live == 1);
    may_reset = true;
    client.join();
    // The reset fails the queued send; the receive runs again, sees the reset, and the
    // registration ends, destroying its handler and with it the stream.
    for (int i = 0; i < 20'000 && *live != 0; ++i) aem::this_capsule::sleep_for(1ms);
    if (*live != 0) {
      if (auto info = aem::ctl(*id).info()) {
        MESSAGE("still live: state " << static_cast<int>(info->state) << " running " << info->running << " queued "
                                     << info->queued << " throttled " << info->throttled << " activated "
                                     << info->activated << " delivered " << info->delivered);
      } else {
        MESSAGE("still live, registration gone: " << info.error().message());
      }
    }
    CHECK(*live == 0);
  });
}

TEST_CASE("backpressure: a capsule that sends to a peer that does not read suspends, and nothing is lost") {
  aem::Config config = aem_test::config_for(1);
  config.send_queue_bound = 256 * 1024;
  aem::Runtime rt(config);
  rt.run([] {
    aem::TcpListener listener = aem_test::loopback_listener();
    auto address = listener.local_address();
    REQUIRE(address);
    constexpr std::size_t kBlock = 256 * 1024;
    constexpr std::size_t kBlocks = kFlood / kBlock;
    std::atomic<std::size_t> queued{0};  // bytes the sender's send() calls have returned for
    std::atomic<bool> start_reading{false};
    std::atomic<std::uint64_t> received_sum{0};
    std::atomic<std::size_t> received{0};
    std::thread client([&] {
      const int fd = connect_blocking(*address);
      while (!start_reading) std::this_thread::sleep_for(1ms);
      std::vector<std::byte> buffer(1 << 16);
      std::uint64_t hash = 0xcbf29ce484222325ull;
      std::size_t total = 0;
      for (;;) {
        const ssize_t n = ::read(fd, buffer.data(), buffer.size());
        if (n <= 0) break;
        hash = aem_test::checksum(std::span(buffer.data(), static_cast<std::size_t>(n)), hash);
        total += static_cast<std::size_t>(n);
      }
      received_sum = hash;
      received = total;
      ::close(fd);
    });
    auto accepted = listener.accept(10s);
    REQUIRE(accepted);
    small_buffers(accepted->fd());
    aem::TcpStream stream = std::move(*accepted);
    const std::vector<std::byte> data = aem_test::pattern(kFlood, 7);
    auto sender = aem::spawn([&] {
      for (std::size_t i = 0; i < kBlocks; ++i) {
        auto block = aem::this_core::allocate_data(kBlock);
        REQUIRE(block);
        std::memcpy(block->data(), data.data() + i * kBlock, kBlock);
        REQUIRE(stream.send(std::move(*block)));
        queued += kBlock;
      }
      REQUIRE(stream.flush(60s));
      (void)stream.shutdown(aem::Shutdown::write);
    });
    REQUIRE(sender);
    // Wait until the sender stops getting ahead: it is suspended in send().
    std::size_t seen = 0;
    for (int quiet = 0; quiet < 500 && queued.load() < kFlood; ++quiet) {
      aem::this_capsule::sleep_for(2ms);
      if (queued.load() != seen) {
        seen = queued.load();
        quiet = 0;
      }
    }
    MESSAGE("the sender queued " << (queued.load() >> 10) << " KiB before it was held back");
    CHECK(queued.load() < kFlood / 4);
    start_reading = true;
    sender->join();
    while (received.load() == 0 && received_sum.load() == 0) aem::this_capsule::sleep_for(1ms);
    client.join();
    CHECK(received.load() == kFlood);
    CHECK(received_sum.load() == aem_test::checksum(data));
  });
}
