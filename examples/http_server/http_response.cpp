// http_response.cpp — format_head, reason_phrase, http_date.
#include "http_response.hpp"

#include <charconv>
#include <cstring>
#include <ctime>

namespace http {
namespace {

// Writer appends to a fixed span and remembers whether everything fitted.
class Writer {
 public:
  explicit Writer(std::span<char> out) noexcept : out_(out) {}
  Writer& operator<<(std::string_view text) noexcept {
    if (text.size() > out_.size() - length_) {
      overflow_ = true;
      return *this;
    }
    std::memcpy(out_.data() + length_, text.data(), text.size());
    length_ += text.size();
    return *this;
  }
  Writer& operator<<(std::uint64_t number) noexcept {
    char digits[20];
    const auto [end, error] = std::to_chars(digits, digits + sizeof digits, number);
    (void)error;  // 20 digits hold any 64-bit number
    return *this << std::string_view(digits, static_cast<std::size_t>(end - digits));
  }
  std::size_t length() const noexcept { return overflow_ ? 0 : length_; }

 private:
  std::span<char> out_;
  std::size_t length_ = 0;
  bool overflow_ = false;
};

}  // namespace

std::string_view reason_phrase(std::uint16_t status) noexcept {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

std::size_t format_head(const ResponseHead& head, std::string_view date, std::span<char> out) noexcept {
  Writer w(out);
  w << "HTTP/1.1 " << std::uint64_t{head.status} << " " << reason_phrase(head.status) << "\r\nServer: " << head.server
    << "\r\nDate: "
    << date << "\r\n";
  if (!head.content_type.empty()) w << "Content-Type: " << head.content_type << "\r\n";
  w << "Content-Length: " << head.content_length << "\r\n";
  if (!head.allow.empty()) w << "Allow: " << head.allow << "\r\n";
  if (head.close) w << "Connection: close\r\n";
  else if (head.keep_alive) w << "Connection: keep-alive\r\n";
  w << "\r\n";
  return w.length();
}

std::string_view http_date() noexcept {
  struct Cache {
    std::time_t second = -1;
    char text[32] = {};
    std::size_t length = 0;
  };
  thread_local Cache cache;
  timespec now{};
  // The coarse clock is read without a system call and without the cost of a precise read:
  // a Date field only shows seconds.
  ::clock_gettime(CLOCK_REALTIME_COARSE, &now);
  if (now.tv_sec != cache.second) {
    std::tm parts{};
    ::gmtime_r(&now.tv_sec, &parts);
    cache.length = std::strftime(cache.text, sizeof cache.text, "%a, %d %b %Y %H:%M:%S GMT", &parts);
    cache.second = now.tv_sec;
  }
  return {cache.text, cache.length};
}

}  // namespace http
