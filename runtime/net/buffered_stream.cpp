// buffered_stream.cpp — BufferedStream: the read buffer (framed reads, compaction) and the
// write buffer (gathering, writev for what does not fit).
#include <aem/net/buffered_stream.hpp>

#include <algorithm>
#include <cstring>
#include <new>

namespace aem {
namespace {

// allocate returns a buffer of `size` bytes, or null when memory is out (reported as
// errc::out_of_memory instead of an exception: the calls return Result).
std::unique_ptr<std::byte[]> allocate(std::size_t size) noexcept {
  return std::unique_ptr<std::byte[]>(new (std::nothrow) std::byte[size]);
}

}  // namespace

void BufferedStream::consume(std::size_t count) noexcept {
  begin_ += std::min(count, end_ - begin_);
  // An empty buffer starts over at the front: the next read gets the whole room without a move.
  if (begin_ == end_) begin_ = end_ = 0;
}

Result<std::size_t> BufferedStream::read_into_buffer(std::size_t room, Deadline deadline) {
  const std::size_t capacity = options_.read_capacity;
  if (!read_buffer_) {
    if (capacity == 0) return errc::invalid_argument;
    read_buffer_ = allocate(capacity);
    if (!read_buffer_) return errc::out_of_memory;
  }
  if (at_end_) return std::size_t{0};
  // Move the unread bytes to the front only when the read needs the room, or when the room
  // behind them is a sliver that moving at least doubles: a protocol that consumes as it reads
  // then moves a few bytes once per buffer-full, and a read is never starved to a few bytes.
  const std::size_t behind = capacity - end_;
  if (begin_ > 0 && (behind < room || (behind < capacity / 8 && begin_ >= behind))) {
    std::memmove(read_buffer_.get(), read_buffer_.get() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  if (end_ == capacity) return errc::resource_limit;
  Result<std::size_t> n = operations_->read(stream_, {read_buffer_.get() + end_, capacity - end_}, deadline);
  if (!n) return n;
  if (*n == 0) at_end_ = true;
  end_ += *n;
  return n;
}

Result<std::size_t> BufferedStream::fill(Deadline deadline) { return read_into_buffer(1, deadline); }

Result<void> BufferedStream::fill_at_least(std::size_t count, Deadline deadline) {
  if (count > options_.read_capacity) return errc::invalid_argument;
  while (end_ - begin_ < count) {
    Result<std::size_t> n = read_into_buffer(count - (end_ - begin_), deadline);
    if (!n) return n.error();
    if (*n == 0) return errc::end_of_stream;
  }
  return {};
}

Result<std::span<const std::byte>> BufferedStream::peek(std::size_t count, Deadline deadline) {
  if (Result<void> filled = fill_at_least(count, deadline); !filled) return filled.error();
  return buffered();
}

std::size_t BufferedStream::find_delimiter(std::span<const std::byte> delimiter, std::size_t from,
                                           std::size_t last_start) const noexcept {
  const std::byte* const base = read_buffer_.get() + begin_;
  const auto first = static_cast<unsigned char>(delimiter[0]);
  while (from < last_start) {
    const void* hit = std::memchr(base + from, first, last_start - from);
    if (hit == nullptr) return kNotFound;
    const auto at = static_cast<std::size_t>(static_cast<const std::byte*>(hit) - base);
    if (std::memcmp(base + at + 1, delimiter.data() + 1, delimiter.size() - 1) == 0) return at;
    from = at + 1;
  }
  return kNotFound;
}

Result<std::span<const std::byte>> BufferedStream::read_until(std::span<const std::byte> delimiter,
                                                              std::size_t max_length, Deadline deadline) {
  if (delimiter.empty() || max_length < delimiter.size() || max_length > options_.read_capacity) {
    return errc::invalid_argument;
  }
  // Starts already searched are not searched again: a line that arrives a byte at a time costs
  // linear time, not quadratic.
  std::size_t from = 0;
  for (;;) {
    const std::size_t size = end_ - begin_;
    const std::size_t limit = std::min(size, max_length);
    if (limit >= delimiter.size()) {
      const std::size_t last_start = limit - delimiter.size() + 1;
      const std::size_t at = find_delimiter(delimiter, from, last_start);
      if (at != kNotFound) {
        const std::span<const std::byte> frame = buffered().first(at + delimiter.size());
        consume(frame.size());  // the bytes stay where they are until the next read
        return frame;
      }
      from = last_start;
    }
    if (size >= max_length) return errc::line_too_long;
    Result<std::size_t> n = read_into_buffer(1, deadline);
    if (!n) return n.error();
    if (*n == 0) return errc::end_of_stream;
  }
}

Result<std::string_view> BufferedStream::read_until(std::string_view delimiter, std::size_t max_length,
                                                    Deadline deadline) {
  Result<std::span<const std::byte>> frame =
      read_until(std::as_bytes(std::span(delimiter.data(), delimiter.size())), max_length, deadline);
  if (!frame) return frame.error();
  return as_text(*frame);
}

Result<std::string_view> BufferedStream::read_line(std::size_t max_length, Deadline deadline) {
  Result<std::string_view> line = read_until("\n", max_length, deadline);
  if (!line) return line;
  std::string_view text = line->substr(0, line->size() - 1);
  if (options_.strip_carriage_return && !text.empty() && text.back() == '\r') text.remove_suffix(1);
  return text;
}

Result<std::size_t> BufferedStream::discard_until(std::span<const std::byte> delimiter, Deadline deadline) {
  if (delimiter.empty() || delimiter.size() > options_.read_capacity) return errc::invalid_argument;
  std::size_t dropped = 0;
  for (;;) {
    const std::size_t size = end_ - begin_;
    if (size >= delimiter.size()) {
      const std::size_t last_start = size - delimiter.size() + 1;
      const std::size_t at = find_delimiter(delimiter, 0, last_start);
      if (at != kNotFound) {
        consume(at + delimiter.size());
        return dropped + at + delimiter.size();
      }
      // Keep the tail that may be the start of a delimiter split across reads.
      consume(last_start);
      dropped += last_start;
    }
    Result<std::size_t> n = read_into_buffer(1, deadline);
    if (!n) return n.error();
    if (*n == 0) return errc::end_of_stream;
  }
}

Result<std::span<const std::byte>> BufferedStream::read_exact(std::size_t count, Deadline deadline) {
  if (Result<void> filled = fill_at_least(count, deadline); !filled) return filled.error();
  const std::span<const std::byte> frame = buffered().first(count);
  consume(count);
  return frame;
}

Result<void> BufferedStream::read_exact(std::span<std::byte> out, Deadline deadline) {
  if (out.size() <= options_.read_capacity) {
    // Through the buffer, so that nothing is consumed when the call fails.
    Result<std::span<const std::byte>> frame = read_exact(out.size(), deadline);
    if (!frame) return frame.error();
    if (!frame->empty()) std::memcpy(out.data(), frame->data(), frame->size());
    return {};
  }
  // Larger than the buffer: what is buffered, then straight from the stream into `out`.
  const std::size_t from_buffer = end_ - begin_;
  if (from_buffer > 0) std::memcpy(out.data(), buffered().data(), from_buffer);
  consume(from_buffer);
  out = out.subspan(from_buffer);
  while (!out.empty()) {
    if (at_end_) return errc::end_of_stream;
    Result<std::size_t> n = operations_->read(stream_, out, deadline);
    if (!n) return n.error();
    if (*n == 0) at_end_ = true;
    out = out.subspan(*n);
  }
  return {};
}

Result<std::size_t> BufferedStream::read(std::span<std::byte> out, Deadline deadline) {
  if (out.empty()) return std::size_t{0};
  if (begin_ == end_) {
    if (at_end_) return std::size_t{0};
    if (out.size() >= options_.read_capacity) {
      // The buffer would only add a copy.
      Result<std::size_t> n = operations_->read(stream_, out, deadline);
      if (n && *n == 0) at_end_ = true;
      return n;
    }
    Result<std::size_t> n = read_into_buffer(1, deadline);
    if (!n || *n == 0) return n;
  }
  const std::size_t count = std::min(out.size(), end_ - begin_);
  std::memcpy(out.data(), buffered().data(), count);
  consume(count);
  return count;
}

Result<std::span<const std::byte>> BufferedStream::read_some(Deadline deadline) {
  if (begin_ == end_) {
    Result<std::size_t> n = read_into_buffer(1, deadline);
    if (!n) return n.error();
  }
  const std::span<const std::byte> bytes = buffered();
  consume(bytes.size());
  return bytes;
}

Result<void> BufferedStream::write(std::span<const std::byte> data, Deadline deadline) {
  if (data.empty()) return {};
  if (data.size() > options_.write_capacity - write_length_) return write_gathered(data, deadline);
  if (!write_buffer_) {
    write_buffer_ = allocate(options_.write_capacity);
    if (!write_buffer_) return errc::out_of_memory;
  }
  std::memcpy(write_buffer_.get() + write_length_, data.data(), data.size());
  write_length_ += data.size();
  return {};
}

Result<void> BufferedStream::write_gathered(std::span<const std::byte> data, Deadline deadline) {
  iovec parts[2] = {{write_buffer_.get(), write_length_}, {const_cast<std::byte*>(data.data()), data.size()}};
  std::span<iovec> rest(parts);
  if (write_length_ == 0) rest = rest.subspan(1);
  // Either way the buffered bytes are gone: written, or (after an error) of unknown fate.
  write_length_ = 0;
  while (!rest.empty()) {
    Result<std::size_t> n = operations_->writev(stream_, rest, deadline);
    if (!n) return n.error();
    std::size_t written = *n;
    while (!rest.empty() && written >= rest.front().iov_len) {
      written -= rest.front().iov_len;
      rest = rest.subspan(1);
    }
    if (!rest.empty()) {
      rest.front().iov_base = static_cast<std::byte*>(rest.front().iov_base) + written;
      rest.front().iov_len -= written;
    }
  }
  return {};
}

Result<void> BufferedStream::flush(Deadline deadline) {
  std::size_t written = 0;
  Result<void> outcome;
  while (written < write_length_) {
    Result<std::size_t> n =
        operations_->write(stream_, {write_buffer_.get() + written, write_length_ - written}, deadline);
    if (!n) {
      outcome = n.error();
      break;
    }
    written += *n;
  }
  // Keep what was not written at the front, for another flush.
  if (written > 0 && written < write_length_) {
    std::memmove(write_buffer_.get(), write_buffer_.get() + written, write_length_ - written);
  }
  write_length_ -= written;
  return outcome;
}

}  // namespace aem
