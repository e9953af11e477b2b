// detail/byte_stream_calls.hpp — the calls every blocking byte stream (StreamSocket,
// tls::Stream) builds the same way on top of its own read and write: the loops of read_exact and
// write_all, and the char / std::string_view overloads.
#pragma once

#include <aem/error.hpp>
#include <aem/result.hpp>
#include <aem/time.hpp>

#include <cstddef>
#include <span>
#include <string_view>

namespace aem::detail {

// read_exact_with calls stream.read(rest, deadline) until `buffer` is full. Errors: the read's,
// errc::end_of_stream when a read returns 0 (the peer's end) first.
template <class Stream>
Result<void> read_exact_with(Stream& stream, std::span<std::byte> buffer, Deadline deadline) {
  while (!buffer.empty()) {
    Result<std::size_t> n = stream.read(buffer, deadline);
    if (!n) return n.error();
    if (*n == 0) return errc::end_of_stream;
    buffer = buffer.subspan(*n);
  }
  return {};
}

// write_all_with calls stream.write(rest, deadline) until all of `data` is written. Errors: the
// write's (an unknown prefix has been sent then).
template <class Stream>
Result<void> write_all_with(Stream& stream, std::span<const std::byte> data, Deadline deadline) {
  while (!data.empty()) {
    Result<std::size_t> n = stream.write(data, deadline);
    if (!n) return n.error();
    data = data.subspan(*n);
  }
  return {};
}

// TextOverloads gives a stream class (CRTP: Derived declares read, read_exact, write and
// write_all over std::byte spans, then `using TextOverloads<Derived>::read;` and so on) the
// overloads over char buffers and std::string_view text, forwarding to the byte ones. The
// std::string_view overloads take text: a char array converts up to its first NUL.
template <class Derived>
class TextOverloads {
 public:
  Result<std::size_t> read(std::span<char> buffer, Deadline deadline = {}) {
    return self().read(std::as_writable_bytes(buffer), deadline);
  }
  Result<void> read_exact(std::span<char> buffer, Deadline deadline = {}) {
    return self().read_exact(std::as_writable_bytes(buffer), deadline);
  }
  Result<std::size_t> write(std::string_view data, Deadline deadline = {}) {
    return self().write(as_byte_span(data), deadline);
  }
  Result<void> write_all(std::string_view data, Deadline deadline = {}) {
    return self().write_all(as_byte_span(data), deadline);
  }

 protected:
  TextOverloads() noexcept = default;

 private:
  static std::span<const std::byte> as_byte_span(std::string_view text) noexcept {
    return std::as_bytes(std::span(text.data(), text.size()));
  }
  Derived& self() noexcept { return static_cast<Derived&>(*this); }
};

}  // namespace aem::detail
