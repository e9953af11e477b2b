// http_parser.cpp — RequestParser: finding the end of a head, and the Content-Length body.
// The head's syntax is http_head.cpp's, chunked bodies are http_chunked.cpp's.
#include "http_parser.hpp"

#include <algorithm>

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

// scan_head looks for the blank line that ends the head, validating each byte on the way, and
// never looks past max_head_bytes: what it decides depends only on the bytes it has seen, in
// order, so the outcome is the same however the input was split into receives.
ParseStep RequestParser::scan_head(std::string_view window) noexcept {
  const std::size_t limit = std::min(window.size(), limits_.max_head_bytes);
  for (std::size_t pos = scanned_; pos < limit; ++pos) {
    const auto c = static_cast<unsigned char>(window[pos]);
    // A CR belongs to a CRLF; a bare CR or bare LF could end a line for one parser and not for
    // another (the root of request smuggling), so both are refused.
    if (pos > 0 && window[pos - 1] == '\r' && c != '\n') return fail(kBadRequest);
    if (c == '\n') {
      if (pos == 0 || window[pos - 1] != '\r') return fail(kBadRequest);
      const bool empty_line = pos - 1 == line_start_;
      if (empty_line && request_line_start_ == kNone) {  // an empty line before the request line
        line_start_ = pos + 1;
        continue;
      }
      if (empty_line) {
        const std::size_t head_size = pos + 1;
        const std::size_t start = request_line_start_;
        scanned_ = line_start_ = 0;
        request_line_start_ = kNone;
        const std::uint16_t status =
            parse_head(window.substr(start, head_size - start), limits_, headers_, head_);
        if (status != 0) return fail(status);
        return begin_body(head_size);
      }
      if (request_line_start_ == kNone) request_line_start_ = line_start_;
      line_start_ = pos + 1;
    } else if (c != '\r' && c != '\t' && (c < 0x20 || c == 0x7f)) {
      return fail(kBadRequest);  // control characters have no place in a head
    }
  }
  scanned_ = limit;
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
