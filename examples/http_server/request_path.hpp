// request_path.hpp — from a request target to a file path under the document root, refusing
// anything that could leave the root.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace http {

// ResolvedPath is where resolve_target wrote its result.
struct ResolvedPath {
  std::uint16_t status = 0;    // 0, or the status to answer: 400 (not origin-form, bad
                               // percent-encoding, NUL), 403 (a ".." segment), 414 (too long)
  std::string_view path;       // relative to the root, never absolute, never with "." or ".."
                               // segments; "" names the root itself
  bool wants_directory = false;  // the target ended with '/'
};

// resolve_target decodes the path of an origin-form target ("/a/b%20c?q" -> "a/b c"), drops
// its query, empty and "." segments, and writes the result into `out` (the returned path views
// it). A ".." segment, also percent-encoded, is refused rather than resolved: a document root
// has nothing above it that a client should reach.
ResolvedPath resolve_target(std::string_view target, std::span<char> out) noexcept;

// decode_percent decodes the %XX escapes of `text` into `out`; returns the length, -1 for a bad
// escape or a NUL, -2 when `out` is too small.
long decode_percent(std::string_view text, std::span<char> out) noexcept;

// content_type returns the media type for a file name's extension (application/octet-stream
// when unknown).
std::string_view content_type(std::string_view file_name) noexcept;

}  // namespace http
