// http_parser_fuzz.cpp — libFuzzer target: the HTTP server's request parser
// (examples/http_server/http_parser.hpp) and its target-to-path resolution, fed arbitrary bytes.
//
// Input: 3 configuration bytes (max_head_bytes 64..1072, max_headers 0..15, max_body_bytes
// 0..1147), 2 bytes that seed how the stream is split into receives, then the byte stream of
// one connection. The stream is parsed twice: as one window holding everything, and the way
// the server receives it — pieces of pseudo-random sizes appended to a bounded buffer that
// keeps only the bytes not yet used up. Both runs must report the same requests (heads, body
// bytes, ends) and the same error, and every step must keep the parser's promises: views
// inside the window, bodies ending where the step's consumed count does, limits respected,
// progress made. Each head's target also goes through resolve_target, whose result must never
// leave the root. Any violation calls __builtin_trap(), which libFuzzer reports with the input.
#include "http_parser.hpp"
#include "request_path.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace {

// check stops the run with `what` when a promise is broken.
void check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "http_parser_fuzz: broken promise: %s\n", what);
  __builtin_trap();
}

bool inside(std::string_view part, std::string_view whole) {
  return part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size();
}

bool has_line_break(std::string_view text) { return text.find_first_of("\r\n") != std::string_view::npos; }

void check_target(std::string_view target) {
  std::array<char, 512> out;
  const http::ResolvedPath resolved = http::resolve_target(target, out);
  if (resolved.status != 0) {
    check(resolved.status == 400 || resolved.status == 403 || resolved.status == 414, "resolve_target status");
    return;
  }
  const std::string_view path = resolved.path;
  check(path.size() <= out.size(), "path fits");
  check(path.find('\0') == std::string_view::npos, "no NUL in a path");
  check(path.empty() || (path.front() != '/' && path.back() != '/'), "relative path without empty ends");
  std::size_t start = 0;
  while (start <= path.size() && !path.empty()) {
    std::size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view segment = path.substr(start, end - start);
    check(!segment.empty() && segment != "." && segment != "..", "segments are names");
    start = end + 1;
  }
}

void check_head(const http::RequestHead& head, std::string_view window, std::size_t consumed, const http::Limits& limits) {
  const std::string_view used = window.substr(0, consumed);
  check(consumed <= limits.max_head_bytes, "head within max_head_bytes");
  check(head.headers.size() <= limits.max_headers, "header count within max_headers");
  check(!head.method.empty() && inside(head.method, used), "method inside the head");
  check(!head.target.empty() && inside(head.target, used) && !has_line_break(head.target), "target inside the head");
  for (const http::Header& field : head.headers) {
    check(!field.name.empty() && inside(field.name, used), "field name inside the head");
    check(field.name.find_first_of(": \t") == std::string_view::npos && !has_line_break(field.name), "field name is a token");
    check(inside(field.value, used) || field.value.empty(), "field value inside the head");
    check(!has_line_break(field.value), "field value on one line");
    check(field.value.empty() || (field.value.front() != ' ' && field.value.back() != ' '), "field value trimmed");
  }
  if (head.framing == http::BodyFraming::content_length) {
    check(head.content_length > 0 && head.content_length <= limits.max_body_bytes, "Content-Length within the limit");
  }
  check_target(head.target);
}

// Run parses a stream and writes what it found into a transcript.
struct Run {
  explicit Run(const http::Limits& l) : limits(l), parser(l) {}

  // feed parses what `window` holds; returns how many bytes it used up.
  std::size_t feed(std::string_view window) {
    std::size_t used = 0;
    for (std::size_t guard = 0;; ++guard) {
      check(guard <= 4 * window.size() + 16, "progress");
      const std::string_view rest = window.substr(used);
      const bool at_start = parser.at_message_start();
      const http::ParseStep step = parser.next(rest);
      check(step.consumed <= rest.size(), "consumed within the window");
      switch (step.event) {
        case http::ParseEvent::need:
          if (at_start) check(step.consumed == 0, "an incomplete head is kept whole");
          return used + step.consumed;
        case http::ParseEvent::head:
          check(step.consumed > 0, "a head has bytes");
          check_head(parser.head(), rest, step.consumed, limits);
          content_length = parser.head().framing == http::BodyFraming::content_length ? parser.head().content_length : 0;
          transcript += "H " + std::string(parser.head().method) + " " + std::string(parser.head().target) + " " +
                        std::to_string(parser.head().headers.size()) + " " + std::to_string(parser.head().keep_alive) +
                        std::to_string(static_cast<int>(parser.head().framing)) + "\n";
          body.clear();
          break;
        case http::ParseEvent::body:
          check(!step.body.empty(), "a body event has bytes");
          check(inside(step.body, rest) && step.body.data() + step.body.size() == rest.data() + step.consumed,
                "body bytes end where the step ends");
          body += step.body;
          check(body.size() <= limits.max_body_bytes, "body within max_body_bytes");
          check(parser.body_bytes() == body.size(), "body_bytes counts what was delivered");
          break;
        case http::ParseEvent::end:
          check(content_length == 0 || body.size() == content_length, "a sized body is whole");
          transcript += "B " + body + "\nE\n";
          content_length = 0;
          break;
        case http::ParseEvent::error: {
          const std::uint16_t status = parser.status();
          check(status == 400 || status == 413 || status == 431 || status == 501 || status == 505, "error status");
          check(step.consumed == 0, "an error uses up nothing");
          const http::ParseStep again = parser.next(rest);
          check(again.event == http::ParseEvent::error && again.consumed == 0, "errors are final");
          transcript += "X " + std::to_string(status) + "\n";
          failed = true;
          return used;
        }
      }
      used += step.consumed;
    }
  }

  http::Limits limits;
  http::RequestParser parser;
  std::string transcript;
  std::string body;
  std::uint64_t content_length = 0;
  bool failed = false;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 5) return 0;
  http::Limits limits;
  limits.max_head_bytes = 64 + std::size_t{data[0]} % 64 * 16;
  limits.max_headers = data[1] % 16;
  limits.max_body_bytes = std::uint64_t{data[2]} % 32 * 37;
  std::uint32_t seed = data[3] | (std::uint32_t{data[4]} << 8) | 1;
  const std::string_view stream(reinterpret_cast<const char*>(data + 5), size - 5);

  Run whole(limits);
  const std::size_t whole_used = whole.feed(stream);
  const std::size_t whole_left = stream.size() - whole_used;

  // The server's way: a buffer of bounded capacity (at least max_head_bytes) that keeps what
  // is not used up, fed in pieces of 1..64 bytes.
  Run pieces(limits);
  const std::size_t capacity = limits.max_head_bytes + seed % 64;
  std::string buffer;
  std::size_t offset = 0;
  while (offset < stream.size() && !pieces.failed) {
    seed ^= seed << 13;
    seed ^= seed >> 17;
    seed ^= seed << 5;
    const std::size_t want = 1 + seed % 64;
    const std::size_t n = std::min({want, stream.size() - offset, capacity - buffer.size()});
    check(n > 0, "a full buffer was used up");
    buffer.append(stream.substr(offset, n));
    offset += n;
    buffer.erase(0, pieces.feed(buffer));
  }
  check(whole.transcript == pieces.transcript, "the same requests however the stream is split");
  check(whole.failed == pieces.failed, "the same outcome however the stream is split");
  if (!whole.failed) check(buffer.size() == whole_left, "the same bytes left over");
  return 0;
}
