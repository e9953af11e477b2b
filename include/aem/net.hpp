// net.hpp — blocking-style networking from capsules: the sockets of include/aem/net/ (their
// AEM-style registrations, on_accept / on_data / on_close / on_state, are in aem/net/events.hpp).
//
// Example (an echo server; every connection in its own capsule):
//   aem::Runtime rt(aem::Config{.cores = 2});
//   rt.run([] {
//     auto listener = aem::TcpListener::bind(aem::SocketAddress::ipv4_loopback(7000)).value();
//     while (auto stream = listener.accept()) {
//       (void)aem::spawn([s = std::move(*stream)]() mutable {
//         std::array<std::byte, 4096> buffer;
//         while (auto n = s.read(buffer)) {
//           if (*n == 0 || !s.write_all(std::span(buffer).first(*n))) break;
//         }
//       });
//     }
//   });
#pragma once

#include <aem/net/address.hpp>
#include <aem/net/buffered_stream.hpp>
#include <aem/net/listener.hpp>
#include <aem/net/socket.hpp>
#include <aem/net/stream.hpp>
#include <aem/net/tcp.hpp>
#include <aem/net/udp.hpp>
#include <aem/net/unix.hpp>
