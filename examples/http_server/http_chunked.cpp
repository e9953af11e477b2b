// http_chunked.cpp — RequestParser::chunked_body: decoding a chunked request body byte by byte
// (RFC 9112 §7.1), so that any split of the input gives the same result. Chunk extensions and
// trailer fields are read and dropped; both are bounded.
#include "http_parser.hpp"

#include <algorithm>
#include <limits>

namespace http {
namespace {

int hex_value(unsigned char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// is_control reports the bytes that may not appear inside a chunk line or trailer field.
bool is_control(unsigned char c) noexcept { return (c < 0x20 && c != '\t') || c == 0x7f; }

}  // namespace

ParseStep RequestParser::chunked_body(std::string_view window) noexcept {
  std::size_t pos = 0;
  while (pos < window.size()) {
    const auto c = static_cast<unsigned char>(window[pos]);
    switch (chunk_) {
      case Chunk::size: {
        if (++line_bytes_ > kMaxChunkLineBytes) return fail(kBadRequest);
        if (const int digit = hex_value(c); digit >= 0) {
          // The size only grows with more digits: once it exceeds what the body may still
          // hold, the answer is 413 whatever follows.
          if (remaining_ > (std::numeric_limits<std::uint64_t>::max() >> 4)) return fail(kPayloadTooLarge);
          remaining_ = remaining_ * 16 + static_cast<unsigned>(digit);
          ++size_digits_;
          if (remaining_ > limits_.max_body_bytes - body_seen_) return fail(kPayloadTooLarge);
        } else if (size_digits_ == 0) {
          return fail(kBadRequest);
        } else if (c == '\r') {
          chunk_ = Chunk::size_lf;
        } else if (c == ';') {
          chunk_ = Chunk::extension;
        } else if (c == ' ' || c == '\t') {
          chunk_ = Chunk::size_space;
        } else {
          return fail(kBadRequest);
        }
        break;
      }
      case Chunk::size_space:
        // chunk-ext = *( BWS ";" ... ): whitespace after the size may only lead to an
        // extension. Taking "5 6" as 5 would let a parser that reads it differently (or
        // refuses it) see another body in the same bytes.
        if (++line_bytes_ > kMaxChunkLineBytes) return fail(kBadRequest);
        if (c == ';') chunk_ = Chunk::extension;
        else if (c != ' ' && c != '\t') return fail(kBadRequest);
        break;
      case Chunk::extension:
        if (++line_bytes_ > kMaxChunkLineBytes) return fail(kBadRequest);
        if (c == '\r') chunk_ = Chunk::size_lf;
        else if (is_control(c)) return fail(kBadRequest);
        break;
      case Chunk::size_lf:
        if (c != '\n') return fail(kBadRequest);
        line_bytes_ = 0;
        size_digits_ = 0;
        chunk_ = remaining_ == 0 ? Chunk::trailer_start : Chunk::data;
        break;
      case Chunk::data: {
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, window.size() - pos));
        remaining_ -= n;
        body_seen_ += n;
        if (remaining_ == 0) chunk_ = Chunk::data_cr;
        return {ParseEvent::body, pos + n, window.substr(pos, n)};
      }
      case Chunk::data_cr:
        if (c != '\r') return fail(kBadRequest);
        chunk_ = Chunk::data_lf;
        break;
      case Chunk::data_lf:
        if (c != '\n') return fail(kBadRequest);
        chunk_ = Chunk::size;
        break;
      case Chunk::trailer_start:
      case Chunk::trailer_line:
      case Chunk::trailer_lf:
        // Trailer fields count against the head limit: they are header fields too.
        if (++line_bytes_ > limits_.max_head_bytes) return fail(kHeaderFieldsTooLarge);
        if (chunk_ == Chunk::trailer_lf) {
          if (c != '\n') return fail(kBadRequest);
          chunk_ = Chunk::trailer_start;
        } else if (c == '\r') {
          chunk_ = chunk_ == Chunk::trailer_start ? Chunk::end_lf : Chunk::trailer_lf;
        } else if (is_control(c)) {
          return fail(kBadRequest);
        } else {
          chunk_ = Chunk::trailer_line;
        }
        break;
      case Chunk::end_lf:
        if (c != '\n') return fail(kBadRequest);
        chunk_ = Chunk::size;
        line_bytes_ = 0;
        return finish(pos + 1);
    }
    ++pos;
  }
  return {ParseEvent::need, pos, {}};
}

}  // namespace http
