// styles.hpp — the two ways http_server serves connections.
//   capsule       a capsule per connection reads, parses and answers in blocking style;
//   registration  AEM style: an on_accept registration, and per connection an on_data
//                 registration (Executor::keepalive) whose handler answers what each receive
//                 completes; an idle connection holds no capsule and no buffer.
#pragma once

#include "server.hpp"

#include <aem/net/tcp.hpp>
#include <aem/wait_group.hpp>

#include <string_view>

namespace http {

struct Style {
  std::string_view name;
  std::string_view description;
  // serve accepts connections on `listener` and hands them to the cores round-robin until
  // `stop` reaches zero; it returns once accepting has ended (connections go on). Call from a
  // capsule.
  void (*serve)(aem::TcpListener& listener, Server& server, aem::WaitGroup& stop);
};

void serve_capsules(aem::TcpListener& listener, Server& server, aem::WaitGroup& stop);
void serve_registrations(aem::TcpListener& listener, Server& server, aem::WaitGroup& stop);

inline constexpr Style kStyles[] = {
    {"capsule", "one capsule per connection, blocking-style reads and writes", &serve_capsules},
    {"registration", "on_accept + one on_data registration per connection (no idle capsule)", &serve_registrations},
};

inline const Style* find_style(std::string_view name) {
  for (const Style& style : kStyles) {
    if (style.name == name) return &style;
  }
  return nullptr;
}

// refuse queues a 503 answer on a connection over the limit without waiting for it to be
// written; destroying `stream` afterwards closes the connection once the answer is out. It never
// suspends, so a flood of connections over the limit takes no capsule. Call on a core (from a
// capsule or an inline handler), and destroy `stream` on that core.
void refuse(aem::TcpStream& stream);

}  // namespace http
