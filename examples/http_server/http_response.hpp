// http_response.hpp — writing response heads: status line, the fields this server sends, and
// the Date field from a per-thread cache refreshed once a second.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace http {

// ResponseHead says what goes into a response head.
struct ResponseHead {
  std::uint16_t status = 200;
  std::string_view content_type;  // omitted when empty
  std::uint64_t content_length = 0;
  bool close = false;             // "Connection: close": the server ends the connection after it
  bool keep_alive = false;        // "Connection: keep-alive": for HTTP/1.0 clients that asked
  std::string_view allow;         // the Allow field of a 405, omitted when empty
  std::string_view server = "aem";  // the Server field (short: kMaxResponseHead bounds the head)
};

// kMaxResponseHead bounds what format_head writes when content_type and allow come from this
// server (they are short constants).
inline constexpr std::size_t kMaxResponseHead = 512;

// format_head writes `head` (status line, Server, Date, the fields above, blank line) into
// `out` and returns the length, or 0 when `out` is too small. `date` is an IMF-fixdate.
std::size_t format_head(const ResponseHead& head, std::string_view date, std::span<char> out) noexcept;

// reason_phrase returns the reason phrase of the statuses this server sends ("Unknown" else).
std::string_view reason_phrase(std::uint16_t status) noexcept;

// http_date returns the current time as an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"). The
// text is formatted at most once a second per thread and stays valid until the thread's next
// call.
std::string_view http_date() noexcept;

// kContinue is the interim response to "Expect: 100-continue".
inline constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

}  // namespace http
