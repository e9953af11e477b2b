// request_path.cpp — resolve_target and content_type.
#include "request_path.hpp"

#include "http_parser.hpp"

namespace http {
namespace {

int hex_digit(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

long decode_percent(std::string_view text, std::span<char> out) noexcept {
  std::size_t length = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size()) return -1;
      const int high = hex_digit(text[i + 1]);
      const int low = hex_digit(text[i + 2]);
      if (high < 0 || low < 0) return -1;
      c = static_cast<char>(high * 16 + low);
      i += 2;
    }
    if (c == '\0') return -1;
    if (length == out.size()) return -2;
    out[length++] = c;
  }
  return static_cast<long>(length);
}

ResolvedPath resolve_target(std::string_view target, std::span<char> out) noexcept {
  ResolvedPath result;
  if (target.empty() || target.front() != '/') {
    result.status = 400;
    return result;
  }
  target = target.substr(0, target.find('?'));
  result.wants_directory = target.back() == '/';
  // Decode into `out`, then move the kept segments to its front in place: what is dropped only
  // shrinks the path, so every byte is written at or before the place it is read from.
  const long decoded = decode_percent(target, out);
  if (decoded < 0) {
    result.status = decoded == -2 ? 414 : 400;
    return result;
  }
  const std::string_view path(out.data(), static_cast<std::size_t>(decoded));
  std::size_t length = 0;
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view segment = path.substr(start, end - start);
    if (segment == "..") {
      result.status = 403;
      return result;
    }
    if (!segment.empty() && segment != ".") {
      if (length > 0) out[length++] = '/';
      for (const char c : segment) out[length++] = c;
    }
    start = end + 1;
  }
  result.path = std::string_view(out.data(), length);
  return result;
}

std::string_view content_type(std::string_view file_name) noexcept {
  struct Type {
    std::string_view extension;
    std::string_view type;
  };
  static constexpr Type kTypes[] = {
      {"html", "text/html; charset=utf-8"},   {"htm", "text/html; charset=utf-8"},
      {"css", "text/css; charset=utf-8"},     {"js", "text/javascript; charset=utf-8"},
      {"mjs", "text/javascript; charset=utf-8"}, {"json", "application/json"},
      {"txt", "text/plain; charset=utf-8"},   {"md", "text/markdown; charset=utf-8"},
      {"csv", "text/csv; charset=utf-8"},     {"xml", "application/xml"},
      {"svg", "image/svg+xml"},               {"png", "image/png"},
      {"jpg", "image/jpeg"},                  {"jpeg", "image/jpeg"},
      {"gif", "image/gif"},                   {"webp", "image/webp"},
      {"avif", "image/avif"},                 {"ico", "image/vnd.microsoft.icon"},
      {"pdf", "application/pdf"},             {"wasm", "application/wasm"},
      {"woff", "font/woff"},                  {"woff2", "font/woff2"},
      {"ttf", "font/ttf"},                    {"otf", "font/otf"},
      {"mp3", "audio/mpeg"},                  {"ogg", "audio/ogg"},
      {"wav", "audio/wav"},                   {"mp4", "video/mp4"},
      {"webm", "video/webm"},                 {"zip", "application/zip"},
      {"gz", "application/gzip"},             {"tar", "application/x-tar"},
  };
  const std::size_t slash = file_name.rfind('/');
  const std::string_view base = slash == std::string_view::npos ? file_name : file_name.substr(slash + 1);
  const std::size_t dot = base.rfind('.');
  if (dot != std::string_view::npos && dot + 1 < base.size()) {
    const std::string_view extension = base.substr(dot + 1);
    for (const Type& type : kTypes) {
      if (equals_ignore_case(type.extension, extension)) return type.type;
    }
  }
  return "application/octet-stream";
}

}  // namespace http
