// The README's "Buffered reading and framing" snippet: a tiny RESP-style server, served here to
// one client that checks its answers.
#include <aem/capsule.hpp>
#include <aem/runtime.hpp>

#include <chrono>
#include <string_view>

using namespace std::chrono_literals;

// readme-begin
#include <aem/net.hpp>
#include <aem/net/buffered_stream.hpp>

#include <charconv>

// A tiny RESP-style server: one capsule per connection, inline commands, one line each.
void serve(aem::TcpStream stream) {
  aem::BufferedStream io(stream, {.read_capacity = 4096});
  for (;;) {
    auto line = io.read_line(1024, 30s);              // "\r\n" stripped
    if (!line) {
      if (line.error() != aem::errc::line_too_long) break;   // closed, timed out, …
      if (!io.discard_until("\n", 30s) || !io.write("-ERR line too long\r\n")) break;
    } else if (*line == "PING") {
      if (!io.write("+PONG\r\n")) break;
    } else if (line->starts_with("$")) {              // a length-framed payload follows
      std::size_t length = 0;
      std::from_chars(line->data() + 1, line->data() + line->size(), length);
      // Echo it back: the head first, while `line` is valid (a read may reuse its bytes).
      if (!io.write(*line) || !io.write("\r\n")) break;
      auto payload = io.read_exact(length + 2, 30s); // the bytes and their "\r\n"
      if (!payload || !io.write(*payload)) break;
    } else if (!io.write("-ERR unknown command\r\n")) {
      break;
    }
    // Answer a pipelined batch in one write: flush when no further request is buffered.
    if (io.buffered().empty() && !io.flush(30s)) break;
  }
}
// readme-end

int main() {
  aem::Runtime rt(aem::Config{.cores = 1});
  return rt.run([] {
    auto listener = aem::TcpListener::bind(aem::SocketAddress::ipv4_loopback(0));
    if (!listener) return 1;
    auto server = aem::spawn([&] {
      if (auto stream = listener->accept()) serve(std::move(*stream));
    });
    auto client = aem::TcpStream::connect(*listener->local_address());
    if (!server || !client) return 1;
    constexpr std::string_view request = "PING\r\n$3\r\nabc\r\n";
    constexpr std::string_view expected = "+PONG\r\n$3\r\nabc\r\n";
    if (!client->write_all(std::as_bytes(std::span(request.data(), request.size())))) return 1;
    char answer[expected.size()];
    if (!client->read_exact(std::as_writable_bytes(std::span(answer)), 5s)) return 1;
    (void)client->shutdown(aem::Shutdown::write);
    server->join();
    return std::string_view(answer, sizeof answer) == expected ? 0 : 1;
  });
}
