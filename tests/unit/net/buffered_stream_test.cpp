// BufferedStream: framed reads (read_until, read_line, read_exact, peek/consume), end of stream
// and deadlines, buffered and gathered writes — over an in-memory stream whose reads are
// scripted (exact splits, no timing), and over TCP and Unix stream sockets.
#include "support/cores.hpp"
#include "support/net_helpers.hpp"
#include "support/sync_helpers.hpp"

#include <aem/capsule.hpp>
#include <aem/net.hpp>
#include <aem/net/buffered_stream.hpp>
#include <aem/runtime.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

using namespace std::chrono_literals;
using aem_test::as_bytes;
using aem_test::as_string;
using aem_test::is;

namespace {

// ScriptedStream is a ByteStream in memory: each read returns the next scripted step (its
// bytes, at most the caller's buffer, or its error), then 0 for the end; writes append to
// `written`, at most `write_limit` bytes per call, and fail once with `next_write_error`.
struct ScriptedStream {
  struct Step {
    std::string bytes;
    aem::errc error = aem::errc::ok;
  };
  std::deque<Step> steps;
  std::string written;
  std::size_t write_limit = ~std::size_t{0};
  aem::errc next_write_error = aem::errc::ok;
  int reads = 0;
  int writes = 0;
  int gathered_writes = 0;

  void script(std::initializer_list<std::string_view> chunks) {
    for (std::string_view chunk : chunks) steps.push_back({std::string(chunk)});
  }

  aem::Result<std::size_t> read(std::span<std::byte> buffer, aem::Deadline) {
    ++reads;
    if (steps.empty()) return std::size_t{0};
    Step& step = steps.front();
    if (step.error != aem::errc::ok) {
      const aem::errc error = step.error;
      steps.pop_front();
      return error;
    }
    const std::size_t n = std::min(buffer.size(), step.bytes.size());
    std::memcpy(buffer.data(), step.bytes.data(), n);
    step.bytes.erase(0, n);
    if (step.bytes.empty()) steps.pop_front();
    return n;
  }
  aem::Result<std::size_t> write(std::span<const std::byte> data, aem::Deadline) {
    ++writes;
    return take(data);
  }
  aem::Result<std::size_t> writev(std::span<const iovec> parts, aem::Deadline) {
    ++gathered_writes;
    std::size_t total = 0;
    for (const iovec& part : parts) {
      if (total == write_limit) break;
      auto n = take({static_cast<const std::byte*>(part.iov_base), part.iov_len}, write_limit - total);
      if (!n) return n;
      total += *n;
    }
    return total;
  }

 private:
  aem::Result<std::size_t> take(std::span<const std::byte> data, std::size_t limit = ~std::size_t{0}) {
    if (next_write_error != aem::errc::ok) return std::exchange(next_write_error, aem::errc::ok);
    const std::size_t n = std::min({data.size(), write_limit, limit});
    written += as_string(data.first(n));
    return n;
  }
};

static_assert(aem::ByteStream<ScriptedStream>);
static_assert(aem::ByteStream<aem::TcpStream>);
static_assert(aem::ByteStream<aem::UnixStream>);

// OneByteReads reads a socket at most one byte at a time: every delimiter arrives split.
struct OneByteReads {
  aem::StreamSocket& socket;
  aem::Result<std::size_t> read(std::span<std::byte> buffer, aem::Deadline deadline) {
    return socket.read(buffer.first(std::min<std::size_t>(buffer.size(), 1)), deadline);
  }
  aem::Result<std::size_t> write(std::span<const std::byte> data, aem::Deadline deadline) { return socket.write(data, deadline); }
  aem::Result<std::size_t> writev(std::span<const iovec> parts, aem::Deadline deadline) { return socket.writev(parts, deadline); }
};

// run_over_tcp / run_over_unix run `body(writer, reader)` in a runtime of two cores, on a TCP
// loopback connection or on a Unix socket pair.
template <typename F>
void run_over_tcp(F& body) {
  aem::Runtime rt(aem_test::config_for(2));
  rt.run([&] {
    aem_test::TcpPair pair = aem_test::tcp_pair();
    body(pair.client, pair.server);
  });
}

template <typename F>
void run_over_unix(F& body) {
  aem::Runtime rt(aem_test::config_for(2));
  rt.run([&] {
    auto pair = aem::UnixStream::pair();
    REQUIRE(pair);
    body(pair->first, pair->second);
  });
}

// for_each_transport runs `body` over TCP and over a Unix socket pair, each a doctest SUBCASE.
template <typename F>
void for_each_transport(F&& body) {
  SUBCASE("tcp") { run_over_tcp(body); }
  SUBCASE("unix") { run_over_unix(body); }
}

}  // namespace

// ---- in memory: exact splits -----------------------------------------------------------------

TEST_CASE("net buffered: a delimiter split at every position is found") {
  const std::string request = "GET / HTTP/1.1\r\nHost: a\r\n\r\nnext";
  for (std::size_t split = 1; split < request.size(); ++split) {
    CAPTURE(split);
    ScriptedStream stream;
    stream.script({std::string_view(request).substr(0, split), std::string_view(request).substr(split)});
    aem::BufferedStream io(stream);
    auto head = io.read_until("\r\n\r\n", 1024);
    REQUIRE(head);
    CHECK(*head == "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(io.buffered_text() == std::string_view(request).substr(head->size(), io.buffered().size()));
  }
  ScriptedStream stream;  // one byte per read
  for (char c : request) stream.steps.push_back({std::string(1, c)});
  aem::BufferedStream io(stream);
  CHECK(io.read_until("\r\n\r\n", 1024).value() == "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  CHECK(stream.reads == 27);
  CHECK(io.read_until("t", 4).value() == "next");
}

TEST_CASE("net buffered: a line of exactly the maximum, one byte past it, then the stream goes on") {
  for (std::size_t capacity : {8u, 9u, 64u}) {
    CAPTURE(capacity);
    ScriptedStream stream;
    stream.script({"abcdef\r\n", "abcdefg\r\n", "next\n"});
    aem::BufferedStream io(stream, {.read_capacity = capacity});
    CHECK(io.read_line(8).value() == "abcdef");
    auto too_long = io.read_line(8);
    CHECK(is(too_long.error(), aem::errc::line_too_long));
    CHECK(too_long.error().message().find("too long") != std::string::npos);
    // Nothing was consumed: the over-long line is still there, and can be read another way.
    CHECK(io.buffered_text().substr(0, 8) == "abcdefg\r");
    CHECK(is(io.read_line(8).error(), aem::errc::line_too_long));
    if (capacity >= 9) {
      CHECK(io.read_line(9).value() == "abcdefg");
    } else {
      CHECK(io.discard_until("\n").value() == 9);
    }
    CHECK(io.read_line(8).value() == "next");
    CHECK(is(io.read_line(8).error(), aem::errc::end_of_stream));
    CHECK(io.buffered().empty());
  }
}

TEST_CASE("net buffered: discard_until skips a line longer than the buffer") {
  ScriptedStream stream;
  stream.script({std::string(50, 'x'), "\r", "\n", "ok\r\n"});
  aem::BufferedStream io(stream, {.read_capacity = 16});
  CHECK(is(io.read_line(16).error(), aem::errc::line_too_long));
  CHECK(io.discard_until("\r\n").value() == 52);
  CHECK(io.read_line(16).value() == "ok");
}

TEST_CASE("net buffered: read_line keeps or strips the carriage return, and a bare line end") {
  ScriptedStream stream;
  stream.script({"a\r\n\nb\r\n"});
  aem::BufferedStream stripping(stream);
  CHECK(stripping.read_line(8).value() == "a");
  CHECK(stripping.read_line(8).value() == "");
  CHECK(stripping.read_line(8).value() == "b");
  ScriptedStream raw;
  raw.script({"a\r\n"});
  aem::BufferedStream keeping(raw, {.strip_carriage_return = false});
  CHECK(keeping.read_line(8).value() == "a\r");
}

TEST_CASE("net buffered: a failed read consumes nothing and the next call goes on") {
  ScriptedStream stream;
  stream.steps = {{"par"}, {"", aem::errc::timed_out}, {"tial\nrest"}, {"", aem::errc::cancelled}};
  aem::BufferedStream io(stream);
  CHECK(is(io.read_line(64).error(), aem::errc::timed_out));
  CHECK(io.buffered_text() == "par");
  CHECK(io.read_line(64).value() == "partial");
  CHECK(is(io.read_exact(5).error(), aem::errc::cancelled));
  CHECK(io.buffered_text() == "rest");
}

TEST_CASE("net buffered: invalid arguments and a full buffer") {
  ScriptedStream stream;
  stream.script({"0123456789abcdef", "more"});
  aem::BufferedStream io(stream, {.read_capacity = 16});
  CHECK(is(io.read_until("", 8).error(), aem::errc::invalid_argument));
  CHECK(is(io.read_until("\n", 17).error(), aem::errc::invalid_argument));
  CHECK(is(io.read_until("abc", 2).error(), aem::errc::invalid_argument));
  CHECK(is(io.read_exact(17).error(), aem::errc::invalid_argument));
  CHECK(is(io.fill_at_least(17).error(), aem::errc::invalid_argument));
  CHECK(is(io.discard_until(std::string(17, 'x')).error(), aem::errc::invalid_argument));
  CHECK(stream.reads == 0);
  CHECK(io.peek(16).value().size() == 16);
  CHECK(is(io.fill().error(), aem::errc::resource_limit));
  io.consume(10);
  CHECK(io.fill().value() == 4);  // the 6 unread bytes moved to the front to make room
  CHECK(io.buffered_text() == "abcdefmore");
}

TEST_CASE("net buffered: read_exact across buffer boundaries, through the buffer and around it") {
  // Length-framed messages (a one-byte length, then the payload) in reads that cut anywhere.
  std::string wire;
  std::vector<std::string> messages;
  for (int i = 0; i < 40; ++i) {
    messages.push_back(std::string(static_cast<std::size_t>(i % 16), static_cast<char>('a' + i % 26)));
    wire += static_cast<char>(messages.back().size());
    wire += messages.back();
  }
  const std::string large(100, 'L');  // larger than the buffer: read around it
  wire += large + "end";
  ScriptedStream stream;
  for (std::size_t at = 0; at < wire.size(); at += 7) stream.steps.push_back({wire.substr(at, 7)});
  aem::BufferedStream io(stream, {.read_capacity = 16});
  for (const std::string& message : messages) {
    auto length = io.read_exact(1);
    REQUIRE(length);
    const auto size = static_cast<std::size_t>((*length)[0]);
    CHECK(aem::as_text(io.read_exact(size).value()) == message);
  }
  std::string out(large.size(), '\0');
  REQUIRE(io.read_exact(std::span(out)));
  CHECK(out == large);
  char tail[3];
  REQUIRE(io.read_exact(tail));
  CHECK(std::string_view(tail, 3) == "end");
  CHECK(is(io.read_exact(1).error(), aem::errc::end_of_stream));
}

TEST_CASE("net buffered: peek, consume, read and read_some") {
  ScriptedStream stream;
  stream.script({"hello", " world"});
  aem::BufferedStream io(stream);
  CHECK(aem::as_text(io.peek(3).value()) == "hello");
  io.consume(1);
  char two[2];
  CHECK(io.read(two).value() == 2);
  CHECK(std::string_view(two, 2) == "el");
  CHECK(aem::as_text(io.read_some().value()) == "lo");
  CHECK(aem::as_text(io.read_some().value()) == " world");
  CHECK(io.read_some().value().empty());  // the end
  CHECK(io.read(two).value() == 0);
  CHECK(is(io.peek(1).error(), aem::errc::end_of_stream));
}

TEST_CASE("net buffered: small writes gather, a large one goes out with them in one writev") {
  ScriptedStream stream;
  aem::BufferedStream io(stream, {.write_capacity = 16});
  REQUIRE(io.write("+OK\r\n"));
  REQUIRE(io.write(as_bytes(":1\r\n")));
  CHECK(io.pending_write() == 9);
  CHECK(stream.written.empty());
  const std::string payload(1000, 'p');
  REQUIRE(io.write(payload));
  CHECK(stream.gathered_writes == 1);
  CHECK(stream.writes == 0);
  CHECK(stream.written == "+OK\r\n:1\r\n" + payload);
  CHECK(io.pending_write() == 0);
  REQUIRE(io.write("tail"));
  REQUIRE(io.flush());
  CHECK(stream.writes == 1);
  CHECK(stream.written.substr(stream.written.size() - 4) == "tail");
}

TEST_CASE("net buffered: short writes are resumed, and a failed flush keeps the rest") {
  ScriptedStream stream;
  stream.write_limit = 3;
  aem::BufferedStream io(stream, {.write_capacity = 8});
  REQUIRE(io.write("abcdef"));
  REQUIRE(io.write("0123456789"));  // gathered in writes of 3 bytes, across both parts
  CHECK(stream.written == "abcdef0123456789");
  REQUIRE(io.write("xyz12"));
  stream.next_write_error = aem::errc::timed_out;
  CHECK(is(io.flush().error(), aem::errc::timed_out));
  CHECK(io.pending_write() == 5);
  REQUIRE(io.flush());
  CHECK(stream.written == "abcdef0123456789xyz12");
  CHECK(io.pending_write() == 0);
}

// ---- over sockets -----------------------------------------------------------------------------

TEST_CASE("net buffered: a delimiter split across one-byte reads, the peer writing a byte at a time") {
  for_each_transport([](aem::StreamSocket& writer, aem::StreamSocket& reader) {
    const std::string_view text = "PING\r\nSET key value\r\n";
    auto peer = aem_test::spawn_on(1, [&] {
      for (char c : text) REQUIRE(writer.write_all(std::string_view(&c, 1), 10s));
    });
    OneByteReads trickle{reader};
    aem::BufferedStream io(trickle);
    CHECK(io.read_line(64, 10s).value() == "PING");
    CHECK(io.read_until("\r\n", 64, 10s).value() == "SET key value\r\n");
    peer.join();
  });
}

TEST_CASE("net buffered: pipelined lines in one segment, EOF in the middle of a line") {
  for_each_transport([](aem::StreamSocket& writer, aem::StreamSocket& reader) {
    REQUIRE(writer.write_all("one\r\ntwo\r\nthree\r\npart", 10s));
    REQUIRE(writer.shutdown(aem::Shutdown::write));
    aem::BufferedStream io(reader);
    CHECK(io.read_line(64, 10s).value() == "one");
    CHECK(io.read_line(64, 10s).value() == "two");
    CHECK(io.read_line(64, 10s).value() == "three");
    CHECK(is(io.read_line(64, 10s).error(), aem::errc::end_of_stream));
    CHECK(io.buffered_text() == "part");  // the partial line is still there
    CHECK(is(io.read_line(64, 10s).error(), aem::errc::end_of_stream));
    CHECK(aem::as_text(io.read_some(10s).value()) == "part");
    CHECK(io.read_some(10s).value().empty());
  });
}

TEST_CASE("net buffered: read_line times out and the stream stays usable") {
  for_each_transport([](aem::StreamSocket& writer, aem::StreamSocket& reader) {
    aem::BufferedStream io(reader);
    CHECK(is(io.read_line(64, 5ms).error(), aem::errc::timed_out));
    REQUIRE(writer.write_all("half", 10s));
    CHECK(is(io.read_line(64, 5ms).error(), aem::errc::timed_out));
    CHECK(io.buffered_text() == "half");
    REQUIRE(writer.write_all(" line\nnext\n", 10s));
    CHECK(io.read_line(64, 10s).value() == "half line");
    CHECK(io.read_line(64, 10s).value() == "next");
  });
}

TEST_CASE("net buffered: char and std::byte overloads of the stream and the buffer") {
  for_each_transport([](aem::StreamSocket& writer, aem::StreamSocket& reader) {
    // The stream's own overloads: a char buffer reads without std::as_writable_bytes.
    REQUIRE(writer.write_all(std::string_view("text"), 10s));
    REQUIRE(writer.write(std::string("!"), 10s));
    char text[5];
    REQUIRE(reader.read_exact(text, 10s));
    CHECK(std::string_view(text, 5) == "text!");
    REQUIRE(writer.write_all(as_bytes("bytes"), 10s));
    char chunk[16];
    auto n = reader.read(chunk, 10s);
    REQUIRE(n);
    CHECK(std::string_view(chunk, *n) == std::string_view("bytes").substr(0, *n));
    if (*n < 5) REQUIRE(reader.read_exact(std::span(chunk + *n, 5 - *n), 10s));

    aem::BufferedStream out(writer);
    aem::BufferedStream in(reader);
    REQUIRE(out.write("as text|"));
    REQUIRE(out.write(as_bytes("as bytes|")));
    REQUIRE(out.flush(10s));
    const std::byte bar[] = {std::byte{'|'}};
    CHECK(in.read_until("|", 64, 10s).value() == "as text|");
    CHECK(as_string(in.read_until(std::span(bar), 64, 10s).value()) == "as bytes|");
  });
}

TEST_CASE("net buffered: length-framed messages across buffer boundaries over a socket") {
  for_each_transport([](aem::StreamSocket& writer, aem::StreamSocket& reader) {
    const std::vector<std::byte> data = aem_test::pattern(64 * 1024, 7);
    auto peer = aem_test::spawn_on(1, [&] {
      // Frames of 1..300 bytes, each after a 2-byte length, in writes that ignore the frames.
      std::vector<std::byte> wire;
      for (std::size_t at = 0, size = 1; at < data.size(); at += size, size = size % 300 + 1) {
        size = std::min(size, data.size() - at);
        wire.push_back(static_cast<std::byte>(size >> 8));
        wire.push_back(static_cast<std::byte>(size & 0xff));
        wire.insert(wire.end(), data.begin() + static_cast<std::ptrdiff_t>(at),
                    data.begin() + static_cast<std::ptrdiff_t>(at + size));
      }
      for (std::size_t at = 0; at < wire.size(); at += 1000) {
        REQUIRE(writer.write_all(std::span(wire).subspan(at, std::min<std::size_t>(1000, wire.size() - at)), 10s));
      }
      REQUIRE(writer.shutdown(aem::Shutdown::write));
    });
    aem::BufferedStream io(reader, {.read_capacity = 512});
    std::vector<std::byte> received;
    for (;;) {
      auto length = io.read_exact(2, 10s);
      if (!length) {
        CHECK(is(length.error(), aem::errc::end_of_stream));
        CHECK(io.buffered().empty());  // the end came between frames
        break;
      }
      const std::size_t size = (static_cast<std::size_t>((*length)[0]) << 8) | static_cast<std::size_t>((*length)[1]);
      auto frame = io.read_exact(size, 10s);
      REQUIRE(frame);
      received.insert(received.end(), frame->begin(), frame->end());
    }
    CHECK(received.size() == data.size());
    CHECK(aem_test::checksum(received) == aem_test::checksum(data));
    peer.join();
  });
}

TEST_CASE("net buffered: buffered writes, flush, and a large payload through writev over a socket") {
  for_each_transport([](aem::StreamSocket& writer, aem::StreamSocket& reader) {
    const std::vector<std::byte> payload = aem_test::pattern(256 * 1024, 11);
    std::string received;
    auto peer = aem_test::spawn_on(1, [&] {
      auto all = aem_test::read_to_end(reader, 4096);
      CHECK(!all.second);
      received = std::move(all.first);
    });
    aem::BufferedStream io(writer, {.write_capacity = 4096});
    REQUIRE(io.write("head:"));
    REQUIRE(io.write(std::string_view("1\r\n")));
    CHECK(io.pending_write() == 8);
    REQUIRE(io.write(payload, 10s));  // with the 8 buffered bytes, in gathered writes
    CHECK(io.pending_write() == 0);
    REQUIRE(io.write("tail"));
    REQUIRE(io.flush(10s));
    REQUIRE(writer.shutdown(aem::Shutdown::write));
    peer.join();
    REQUIRE(received.size() == 8 + payload.size() + 4);
    CHECK(received.substr(0, 8) == "head:1\r\n");
    CHECK(aem_test::checksum(as_bytes(received).subspan(8, payload.size())) == aem_test::checksum(payload));
    CHECK(received.substr(received.size() - 4) == "tail");
  });
}
