// http_head.cpp — parse_head: the syntax of a request head (RFC 9112 §3, §5), the forms of its
// target (§3.2: origin-form, absolute-form), and what its framing fields mean (§6): Host,
// Content-Length, Transfer-Encoding, Connection, Expect.
// Whatever could let two parsers disagree on where a request ends is refused with 400:
// whitespace before a colon, folded lines, Content-Length together with Transfer-Encoding,
// differing Content-Lengths, chunked applied twice or not last.
#include "http_parser.hpp"

#include <algorithm>
#include <array>
#include <limits>
#include <string_view>

namespace http {
namespace {

// kTchars marks RFC 9110's tchar: the bytes of a token (a method, a field name).
constexpr std::array<bool, 256> kTchars = [] {
  std::array<bool, 256> table{};
  for (std::size_t c = 0; c < table.size(); ++c) table[c] = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  for (const char c : std::string_view("!#$%&'*+-.^_`|~")) table[static_cast<unsigned char>(c)] = true;
  return table;
}();

bool is_tchar(unsigned char c) noexcept { return kTchars[c]; }

bool is_token(std::string_view text) noexcept {
  if (text.empty()) return false;
  for (const char c : text) {
    if (!is_tchar(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

char lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string_view trim(std::string_view text) noexcept {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// take_line returns the text up to the next CRLF and drops it and the CRLF from `rest`.
// Precondition: `rest` contains a CRLF, and each CR in it is one's (the head scanner checked
// every byte), so the next CR is where the line ends.
std::string_view take_line(std::string_view& rest) noexcept {
  const std::size_t end = rest.find('\r');
  const std::string_view line = rest.substr(0, end);
  rest.remove_prefix(end + 2);
  return line;
}

// for_each_element calls `f` with each non-empty, trimmed element of a comma-separated list;
// stops early when `f` returns false.
template <typename F>
void for_each_element(std::string_view list, F&& f) {
  while (!list.empty()) {
    const std::size_t comma = list.find(',');
    const std::string_view element = trim(list.substr(0, comma));
    if (!element.empty() && !f(element)) return;
    if (comma == std::string_view::npos) return;
    list.remove_prefix(comma + 1);
  }
}

// is_scheme reads RFC 3986's scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
bool is_scheme(std::string_view text) noexcept {
  if (text.empty()) return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = lower(text[i]);
    const bool letter = c >= 'a' && c <= 'z';
    if (!letter && (i == 0 || !((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.'))) return false;
  }
  return true;
}

// is_host_byte: the bytes of a reg-name or an IPv4 address (unreserved, sub-delims and the
// '%' of pct-encoded, RFC 3986 §3.2.2).
bool is_host_byte(char c) noexcept {
  if ((c >= '0' && c <= '9') || (lower(c) >= 'a' && lower(c) <= 'z')) return true;
  switch (c) {
    case '-': case '.': case '_': case '~': case '%': case '!': case '$': case '&': case '\'':
    case '(': case ')': case '*': case '+': case ',': case ';': case '=':
      return true;
    default:
      return false;
  }
}

// is_authority checks an http(s) URI's authority = host [ ":" port ]. A userinfo ("user@")
// is refused, as RFC 9110 §4.2.4 advises (it only serves to mislead about the host), and so is
// an empty host, which an http URI may not have (§4.2.1).
bool is_authority(std::string_view authority) noexcept {
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {  // an IP literal
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos || close == 1) return false;
    for (const char c : authority.substr(1, close - 1)) {
      const char l = lower(c);
      if (!((c >= '0' && c <= '9') || (l >= 'a' && l <= 'f') || c == ':' || c == '.')) return false;
    }
    const std::string_view rest = authority.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') return false;
    port = rest.substr(rest.empty() ? 0 : 1);
  } else {
    const std::size_t colon = authority.find(':');
    const std::string_view host = authority.substr(0, colon);
    if (host.empty()) return false;
    for (const char c : host) {
      if (!is_host_byte(c)) return false;
    }
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  for (const char c : port) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// split_target finds the path, the query and, for an absolute-form target, the authority
// (RFC 9112 §3.2). Only http and https name what an origin server serves: an absolute-form
// with another scheme, without "//" or with a bad authority is refused.
std::uint16_t split_target(RequestHead& head) noexcept {
  std::string_view rest = head.target;
  const std::size_t colon = rest.find(':');
  // CONNECT's authority-form ("host:443") would read as a scheme and a colon too.
  const bool absolute_form = rest.front() != '/' && colon != std::string_view::npos &&
                             is_scheme(rest.substr(0, colon)) && head.method != "CONNECT";
  if (absolute_form) {
    const std::string_view scheme = rest.substr(0, colon);
    if (!equals_ignore_case(scheme, "http") && !equals_ignore_case(scheme, "https")) return kBadRequest;
    rest.remove_prefix(colon + 1);
    if (!rest.starts_with("//")) return kBadRequest;
    rest.remove_prefix(2);
    const std::size_t authority_end = std::min(rest.find_first_of("/?"), rest.size());
    head.authority = rest.substr(0, authority_end);
    if (!is_authority(head.authority)) return kBadRequest;
    rest.remove_prefix(authority_end);
  }
  const std::size_t question = rest.find('?');
  head.path = rest.substr(0, question);
  if (question != std::string_view::npos) head.query = rest.substr(question + 1);
  // "http://host" and "http://host?q" name the root: an http URI's empty path is "/"
  // (RFC 9110 §4.2.3), the path an origin-form must send for it (RFC 9112 §3.2.1).
  if (absolute_form && head.path.empty()) head.path = "/";
  return 0;
}

// parse_request_line reads "method SP request-target SP HTTP/d.d".
std::uint16_t parse_request_line(std::string_view line, RequestHead& head) noexcept {
  const std::size_t method_end = line.find(' ');
  if (method_end == std::string_view::npos) return kBadRequest;
  head.method = line.substr(0, method_end);
  if (!is_token(head.method)) return kBadRequest;
  line.remove_prefix(method_end + 1);
  const std::size_t target_end = line.find(' ');
  if (target_end == std::string_view::npos || target_end == 0) return kBadRequest;
  head.target = line.substr(0, target_end);
  for (const char c : head.target) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) return kBadRequest;
  }
  const std::string_view version = line.substr(target_end + 1);
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' || version[5] < '0' ||
      version[5] > '9' || version[7] < '0' || version[7] > '9') {
    return kBadRequest;
  }
  if (version[5] != '1') return kVersionNotSupported;
  head.version_minor = static_cast<unsigned>(version[7] - '0');
  return split_target(head);
}

// Framing collects the fields that decide where the body ends and what the client allows.
struct Framing {
  unsigned hosts = 0;
  std::string_view host;  // the Host field's value
  bool has_length = false;
  std::string_view content_length;  // the first Content-Length value
  bool length_conflict = false;
  bool transfer_encoding = false;
  bool chunked = false;          // "chunked" seen (it must be the last coding)
  bool chunked_not_last = false; // a coding after chunked, or chunked twice
  bool other_coding = false;     // a coding other than chunked (not supported: 501)
  bool close = false;
  bool keep_alive = false;
};

void note_field(const Header& field, Framing& framing, RequestHead& head) noexcept {
  if (equals_ignore_case(field.name, "host")) {
    ++framing.hosts;
    framing.host = field.value;
  } else if (equals_ignore_case(field.name, "content-length")) {
    if (!framing.has_length) framing.content_length = field.value;
    else if (framing.content_length != field.value) framing.length_conflict = true;
    framing.has_length = true;
  } else if (equals_ignore_case(field.name, "transfer-encoding")) {
    framing.transfer_encoding = true;
    for_each_element(field.value, [&](std::string_view coding) {
      if (framing.chunked) framing.chunked_not_last = true;
      if (equals_ignore_case(coding, "chunked")) framing.chunked = true;
      else framing.other_coding = true;
      return true;
    });
  } else if (equals_ignore_case(field.name, "connection")) {
    for_each_element(field.value, [&](std::string_view option) {
      if (equals_ignore_case(option, "close")) framing.close = true;
      else if (equals_ignore_case(option, "keep-alive")) framing.keep_alive = true;
      return true;
    });
  } else if (equals_ignore_case(field.name, "expect")) {
    head.expect_continue = equals_ignore_case(field.value, "100-continue");
  }
}

// parse_length reads 1*DIGIT; a number too large for 64 bits saturates (it is over any limit).
bool parse_length(std::string_view text, std::uint64_t& out) noexcept {
  if (text.empty()) return false;
  std::uint64_t value = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return false;
    const auto digit = static_cast<unsigned>(c - '0');
    if (value > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) value = std::numeric_limits<std::uint64_t>::max();
    else value = value * 10 + digit;
  }
  out = value;
  return true;
}

std::uint16_t apply_framing(const Framing& framing, const Limits& limits, RequestHead& head) noexcept {
  const bool http11 = head.version_minor >= 1;
  // Host is required in HTTP/1.1 even beside an absolute-form target, whose authority then
  // stands instead of it (RFC 9112 §3.2, §3.2.2).
  if (http11 ? framing.hosts != 1 : framing.hosts > 1) return kBadRequest;
  if (head.authority.empty()) head.authority = framing.host;
  if (framing.transfer_encoding) {
    // A 1.0 message cannot be chunked, and a length beside a transfer coding is a smuggling
    // attempt or a broken intermediary: either way the framing is not trustworthy.
    if (!http11 || framing.has_length || !framing.chunked || framing.chunked_not_last) return kBadRequest;
    if (framing.other_coding) return kNotImplemented;
    head.framing = BodyFraming::chunked;
  } else if (framing.has_length) {
    if (framing.length_conflict || !parse_length(framing.content_length, head.content_length)) return kBadRequest;
    if (head.content_length > limits.max_body_bytes) return kPayloadTooLarge;
    head.framing = head.content_length == 0 ? BodyFraming::none : BodyFraming::content_length;
  }
  head.keep_alive = !framing.close && (http11 || framing.keep_alive);
  return 0;
}

}  // namespace

bool equals_ignore_case(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::uint16_t parse_head(std::string_view text, const Limits& limits, std::span<Header> storage,
                         RequestHead& head) noexcept {
  head = RequestHead{};
  std::string_view rest = text;
  if (const std::uint16_t status = parse_request_line(take_line(rest), head); status != 0) return status;
  const std::size_t capacity = limits.max_headers < storage.size() ? limits.max_headers : storage.size();
  std::size_t count = 0;
  Framing framing;
  for (std::string_view line = take_line(rest); !line.empty(); line = take_line(rest)) {
    if (line.front() == ' ' || line.front() == '\t') return kBadRequest;  // obsolete line folding
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || !is_token(line.substr(0, colon))) return kBadRequest;
    if (count == capacity) return kHeaderFieldsTooLarge;
    storage[count] = Header{line.substr(0, colon), trim(line.substr(colon + 1))};
    note_field(storage[count], framing, head);
    ++count;
  }
  head.headers = storage.first(count);
  return apply_framing(framing, limits, head);
}

}  // namespace http
