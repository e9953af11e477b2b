// http_parser.cpp — RequestParser: finding the end of a head, and the Content-Length body.
// The head's syntax is http_head.cpp's, chunked bodies are http_chunked.cpp's.
#include "http_parser.hpp"

#include <algorithm>
#include <array>
#include <cstdint>

namespace http {

RequestParser::RequestParser(const Limits& limits) noexcept : limits_(limits) {}

ParseStep RequestParser::next(std::string_view window) noexcept {
  switch (phase_) {
    case Phase::head:
      return scan_head(window);
    case Phase::sized_body:
      return sized_body(window);
    case Phase::chunked_body:
      return chunked_body(window);
    case Phase::failed:
      break;
  }
  return {ParseEvent::error, 0, {}};
}

namespace {

// HeadByte sorts the bytes of a head for scan_head: most are plain and need no other look.
enum class HeadByte : std::uint8_t { plain, cr, lf, control };

constexpr std::array<HeadByte, 256> kHeadBytes = [] {
  std::array<HeadByte, 256> table{};
  for (std::size_t c = 0; c < table.size(); ++c) {
    table[c] = (c < 0x20 && c != '\t') || c == 0x7f ? HeadByte::control : HeadByte::plain;
  }
  table['\r'] = HeadByte::cr;
  table['\n'] = HeadByte::lf;
  return table;
}();

}  // namespace

// scan_head looks for the blank line that ends the head, validating each byte on the way, and
// never looks past max_head_bytes: what it decides depends only on the bytes it has seen, in
// order, so the outcome is the same however the input was split into receives.
ParseStep RequestParser::scan_head(std::string_view window) noexcept {
  const std::size_t limit = std::min(window.size(), limits_.max_head_bytes);
  std::size_t pos = scanned_;
  while (pos < limit) {
    const HeadByte kind = kHeadBytes[static_cast<unsigned char>(window[pos])];
    if (kind == HeadByte::plain) {
      ++pos;
      continue;
    }
    // A CR belongs to a CRLF; a bare CR or bare LF could end a line for one parser and not for
    // another (the root of request smuggling), so both are refused. Control characters have no
    // place in a head. Each CR takes its LF along, so an LF met here is a bare one.
    if (kind != HeadByte::cr) return fail(kBadRequest);
    if (pos + 1 == limit) break;  // the LF is not there yet (or past the limit): scan from the CR again
    if (window[pos + 1] != '\n') return fail(kBadRequest);
    const std::size_t cr = pos;
    pos += 2;
    const bool empty_line = cr == line_start_;
    if (empty_line && request_line_start_ == kNone) {  // an empty line before the request line
      line_start_ = pos;
      continue;
    }
    if (empty_line) {
      const std::size_t head_size = pos;
      const std::size_t start = request_line_start_;
      scanned_ = line_start_ = 0;
      request_line_start_ = kNone;
      const std::uint16_t status = parse_head(window.substr(start, head_size - start), limits_, headers_, head_);
      if (status != 0) return fail(status);
      return begin_body(head_size);
    }
    if (request_line_start_ == kNone) request_line_start_ = line_start_;
    line_start_ = pos;
  }
  scanned_ = pos;
  if (limit == limits_.max_head_bytes) return fail(kHeaderFieldsTooLarge);
  return {ParseEvent::need, 0, {}};
}

ParseStep RequestParser::begin_body(std::size_t head_size) noexcept {
  body_seen_ = 0;
  remaining_ = 0;
  switch (head_.framing) {
    case BodyFraming::none:
      phase_ = Phase::sized_body;
      break;
    case BodyFraming::content_length:
      phase_ = Phase::sized_body;
      remaining_ = head_.content_length;
      break;
    case BodyFraming::chunked:
      phase_ = Phase::chunked_body;
      chunk_ = Chunk::size;
      line_bytes_ = 0;
      size_digits_ = 0;
      break;
  }
  return {ParseEvent::head, head_size, {}};
}

ParseStep RequestParser::sized_body(std::string_view window) noexcept {
  if (remaining_ == 0) return finish(0);
  const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, window.size()));
  if (n == 0) return {ParseEvent::need, 0, {}};
  remaining_ -= n;
  body_seen_ += n;
  return {ParseEvent::body, n, window.substr(0, n)};
}

ParseStep RequestParser::finish(std::size_t consumed) noexcept {
  phase_ = Phase::head;
  return {ParseEvent::end, consumed, {}};
}

ParseStep RequestParser::fail(std::uint16_t status) noexcept {
  phase_ = Phase::failed;
  status_ = status;
  return {ParseEvent::error, 0, {}};
}

std::string_view RequestHead::header(std::string_view name) const noexcept {
  for (const Header& field : headers) {
    if (equals_ignore_case(field.name, name)) return field.value;
  }
  return {};
}

}  // namespace http
