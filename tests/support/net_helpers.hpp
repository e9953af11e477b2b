// net_helpers.hpp — small helpers shared by the networking tests.
#pragma once

#include <aem/net.hpp>
#include <aem/runtime.hpp>

#include <doctest/doctest.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace aem_test {

inline std::span<const std::byte> as_bytes(std::string_view s) { return std::as_bytes(std::span(s.data(), s.size())); }

inline std::string as_string(std::span<const std::byte> b) { return std::string(reinterpret_cast<const char*>(b.data()), b.size()); }

// loopback_listener binds a TcpListener to 127.0.0.1 on a port the kernel picks.
inline aem::TcpListener loopback_listener(const aem::BindOptions& options = {}) {
  auto listener = aem::TcpListener::bind(aem::SocketAddress::ipv4_loopback(0), options);
  REQUIRE(listener);
  return std::move(*listener);
}

// TcpPair is the two ends of one loopback connection.
struct TcpPair {
  aem::TcpStream client;
  aem::TcpStream server;
};

// tcp_pair returns a connected pair over loopback. Call from a capsule: the kernel completes
// the handshake into the backlog, so connect and accept need not overlap.
inline TcpPair tcp_pair() {
  aem::TcpListener listener = loopback_listener();
  auto address = listener.local_address();
  REQUIRE(address);
  auto client = aem::TcpStream::connect(*address);
  REQUIRE(client);
  auto server = listener.accept();
  REQUIRE(server);
  return TcpPair{std::move(*client), std::move(*server)};
}

// run_with_tcp_pair runs `body(client, server)` in a runtime of `cores` cores, on a fresh
// loopback connection.
template <typename F>
void run_with_tcp_pair(unsigned cores, F&& body) {
  aem::Config config;
  config.cores = cores;
  config.capsules_per_core = 16;
  aem::Runtime rt(config);
  rt.run([&] {
    TcpPair pair = tcp_pair();
    body(pair.client, pair.server);
  });
}

// read_to_end reads `stream` until the end of the stream or an error, in `chunk`-byte reads;
// returns what arrived and the error (empty at a clean end).
inline std::pair<std::string, std::error_code> read_to_end(aem::StreamSocket& stream, std::size_t chunk = 16,
                                                           aem::Deadline deadline = std::chrono::seconds(10)) {
  std::string data;
  std::vector<std::byte> buffer(chunk);
  for (;;) {
    auto n = stream.read(buffer, deadline);
    if (!n) return {data, n.error()};
    if (*n == 0) return {data, {}};
    data += as_string(std::span(buffer).first(*n));
  }
}

// echo_until_end writes back what `stream` reads until the peer ends its side; returns the
// bytes echoed, or the first error.
inline aem::Result<std::size_t> echo_until_end(aem::StreamSocket& stream, aem::Deadline deadline = std::chrono::seconds(10)) {
  std::array<std::byte, 4096> buffer{};
  std::size_t total = 0;
  for (;;) {
    auto n = stream.read(buffer, deadline);
    if (!n) return n.error();
    if (*n == 0) return total;
    if (auto written = stream.write_all(std::span(buffer).first(*n), deadline); !written) return written.error();
    total += *n;
  }
}

// pattern returns `size` bytes that depend on `seed` and on the position, so a lost, doubled
// or reordered chunk shows in a comparison or a checksum.
inline std::vector<std::byte> pattern(std::size_t size, std::uint64_t seed) {
  std::vector<std::byte> data(size);
  std::uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  for (auto& b : data) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b = static_cast<std::byte>(x);
  }
  return data;
}

// checksum is FNV-1a over `data`, continued from `hash`.
inline std::uint64_t checksum(std::span<const std::byte> data, std::uint64_t hash = 0xcbf29ce484222325ull) {
  for (std::byte b : data) hash = (hash ^ static_cast<std::uint8_t>(b)) * 0x100000001b3ull;
  return hash;
}

}  // namespace aem_test
