// http_parser.hpp — an incremental, zero-copy HTTP/1.1 request parser with explicit limits.
//
// The parser reads a stream of pipelined requests from a *window*: the bytes the caller has
// received and not yet dropped, contiguous in memory. Each call to next() looks at the window,
// reports one event and how many bytes at the front of the window it used up; the caller drops
// exactly those bytes and calls again with the remaining ones (plus whatever arrived since).
//
//   head    a request head is complete and valid: RequestParser::head() describes it, with
//           views into the window (valid until the caller drops or moves those bytes).
//   body    decoded body bytes: a view into the window (chunked framing removed).
//   end     the request (head and body) is complete; the next event belongs to the next one.
//   need    the window holds no further complete event: receive more bytes and call again.
//   error   the input is not acceptable; status() says what to answer (400, 413, 431, 501,
//           505). The parser stays in this state: the connection must be closed.
//
// Nothing is copied and nothing is allocated: the parser remembers how far it has scanned an
// incomplete head, so feeding a head byte by byte costs linear time, and it keeps the header
// views in a fixed array. The limits are exact: a head of max_head_bytes bytes (request line,
// header fields and the blank line, plus empty lines before the request line) is accepted, one
// byte more answers 431; so does a head with more than max_headers fields; a body longer than
// max_body_bytes answers 413 (as soon as Content-Length or a chunk size announces it).
// The window a caller keeps must be able to hold max_head_bytes bytes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace http {

// Limits bound what one request may use; see the file comment for their exact meaning.
struct Limits {
  std::size_t max_head_bytes = 8192;
  std::size_t max_headers = 64;
  std::uint64_t max_body_bytes = 1 << 20;
};

// kHeaderCapacity is the most header fields a head may have, whatever Limits::max_headers says.
inline constexpr std::size_t kHeaderCapacity = 256;
// kMaxChunkLineBytes bounds a chunk-size line with its extensions (they are skipped).
inline constexpr std::size_t kMaxChunkLineBytes = 1024;

struct Header {
  std::string_view name;
  std::string_view value;  // without leading and trailing whitespace
};

enum class BodyFraming : std::uint8_t { none, content_length, chunked };

// RequestHead is a parsed, validated request head. The views point into the caller's window
// (but for the "/" that stands for an absolute-form target's empty path).
struct RequestHead {
  std::string_view method;
  std::string_view target;     // the request-target as received
  // The target's path and query (without the '?'), whatever form it came in: the origin-form
  // "/a?q" and the absolute-form "http://host/a?q" both give "/a" and "q". An absolute-form's
  // empty path is "/" (RFC 9110 §4.2.3). Other forms ("*", CONNECT's authority-form) have the
  // target up to its '?' as path.
  std::string_view path;
  std::string_view query;
  // authority is the host the request is for: an absolute-form target's authority, which
  // overrides the Host field (RFC 9112 §3.2.2), or else the Host field's value.
  std::string_view authority;
  unsigned version_minor = 1;  // HTTP/1.<version_minor>
  std::span<const Header> headers;
  BodyFraming framing = BodyFraming::none;
  std::uint64_t content_length = 0;  // for BodyFraming::content_length
  bool keep_alive = true;            // the client allows another request on the connection
  bool expect_continue = false;      // "Expect: 100-continue"

  // header returns the value of the first field called `name` (case-insensitive), or "".
  std::string_view header(std::string_view name) const noexcept;
};

enum class ParseEvent : std::uint8_t { need, head, body, end, error };

struct ParseStep {
  ParseEvent event = ParseEvent::need;
  std::size_t consumed = 0;  // bytes at the front of the window the caller must drop now
  std::string_view body;     // ParseEvent::body: decoded bytes, a view into the window
};

// Status codes the parser answers with.
inline constexpr std::uint16_t kBadRequest = 400;
inline constexpr std::uint16_t kPayloadTooLarge = 413;
inline constexpr std::uint16_t kHeaderFieldsTooLarge = 431;
inline constexpr std::uint16_t kNotImplemented = 501;
inline constexpr std::uint16_t kVersionNotSupported = 505;

// RequestParser parses one connection's requests. Not thread-safe; cheap to construct.
class RequestParser {
 public:
  explicit RequestParser(const Limits& limits) noexcept;

  // next reports the next event of the window (see the file comment). Precondition: `window`
  // starts with the bytes not yet dropped, unchanged since the previous call (more may follow).
  ParseStep next(std::string_view window) noexcept;

  // head returns the head of the current request; valid after a head event while its bytes
  // are still in the caller's window.
  const RequestHead& head() const noexcept { return head_; }
  // status returns the status to answer after an error event (0 before any error).
  std::uint16_t status() const noexcept { return status_; }
  // at_message_start reports whether no byte of a next request has been used up or scanned:
  // the connection is between requests.
  bool at_message_start() const noexcept { return phase_ == Phase::head && scanned_ == 0; }
  // body_bytes returns the body bytes decoded so far for the current request.
  std::uint64_t body_bytes() const noexcept { return body_seen_; }

 private:
  enum class Phase : std::uint8_t { head, sized_body, chunked_body, failed };
  // Chunked-body states, in the order a chunk goes through them.
  enum class Chunk : std::uint8_t { size, size_space, extension, size_lf, data, data_cr, data_lf, trailer_start, trailer_line, trailer_lf, end_lf };

  ParseStep scan_head(std::string_view window) noexcept;
  ParseStep begin_body(std::size_t head_size) noexcept;
  ParseStep sized_body(std::string_view window) noexcept;
  ParseStep chunked_body(std::string_view window) noexcept;
  ParseStep fail(std::uint16_t status) noexcept;
  ParseStep finish(std::size_t consumed) noexcept;

  Limits limits_;
  Phase phase_ = Phase::head;
  std::uint16_t status_ = 0;
  // Head scanning: bytes already scanned, where the current line starts, where the request
  // line starts (npos while only empty lines were seen).
  std::size_t scanned_ = 0;
  std::size_t line_start_ = 0;
  std::size_t request_line_start_ = kNone;
  // Body decoding.
  Chunk chunk_ = Chunk::size;
  std::uint64_t remaining_ = 0;  // bytes left of the sized body or the current chunk
  std::uint64_t body_seen_ = 0;
  std::size_t line_bytes_ = 0;  // of the current chunk-size line, or of the trailer section
  unsigned size_digits_ = 0;
  RequestHead head_;
  std::array<Header, kHeaderCapacity> headers_;

  static constexpr std::size_t kNone = ~std::size_t{0};
};

// parse_head parses a complete head (`text` ends with the blank line's CRLF, no empty lines
// before the request line) into `head`, whose headers go to `storage`. Returns 0 or the error
// status. Exposed for tests; RequestParser::next calls it.
std::uint16_t parse_head(std::string_view text, const Limits& limits, std::span<Header> storage,
                         RequestHead& head) noexcept;

// equals_ignore_case compares ASCII text case-insensitively.
bool equals_ignore_case(std::string_view a, std::string_view b) noexcept;

}  // namespace http
