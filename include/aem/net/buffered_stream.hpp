// net/buffered_stream.hpp — BufferedStream: buffered reading and writing over a byte stream,
// with the framed reads every line- or length-delimited protocol needs (read_until, read_line,
// read_exact into the buffer, peek/consume) and gathered buffered writes.
#pragma once

#include <aem/export.hpp>
#include <aem/result.hpp>
#include <aem/time.hpp>

#include <concepts>
#include <cstddef>
#include <memory>
#include <span>
#include <string_view>
#include <sys/uio.h>

namespace aem {

// ByteStream is what BufferedStream needs of the stream beneath it: three blocking-style calls
// with the meaning StreamSocket (TcpStream, UnixStream) gives them —
//   read(span<byte>, Deadline) -> Result<size_t>           some bytes (at least one), 0 at the end;
//   write(span<const byte>, Deadline) -> Result<size_t>    some of the bytes (at least one);
//   writev(span<const iovec>, Deadline) -> Result<size_t>  some of the buffers' bytes, in order.
// Any other stream with these shapes (a TLS stream, a test double) fits as well.
template <typename S>
concept ByteStream = requires(S& stream, std::span<std::byte> in, std::span<const std::byte> out,
                              std::span<const iovec> gathered, Deadline deadline) {
  { stream.read(in, deadline) } -> std::same_as<Result<std::size_t>>;
  { stream.write(out, deadline) } -> std::same_as<Result<std::size_t>>;
  { stream.writev(gathered, deadline) } -> std::same_as<Result<std::size_t>>;
};

// BufferedStreamOptions size a BufferedStream's two buffers (each allocated on first use).
struct BufferedStreamOptions {
  // read_capacity is the read buffer: the longest line or frame read_until, read_line, peek
  // and read_exact(n) can return. At least 1.
  std::size_t read_capacity = 16 * 1024;
  // write_capacity is the write buffer: smaller writes gather there until flush(); a write
  // that does not fit goes out at once, in one gathered write with what is buffered. 0: every
  // write goes straight to the stream.
  std::size_t write_capacity = 16 * 1024;
  // strip_carriage_return: read_line also removes a "\r" before the "\n" (CRLF protocols).
  bool strip_carriage_return = true;
};

// as_text views bytes as characters.
inline std::string_view as_text(std::span<const std::byte> bytes) noexcept {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// BufferedStream reads a stream through a buffer, so that a protocol can ask for "up to the
// next delimiter" or "the next N bytes" and get a view of them where they lie; and gathers
// small writes until flush(). It does not own the stream, which must outlive it.
//
// Reading. The framed reads return a view into the read buffer, valid until the next call that
// reads (any read, peek, fill, consume, discard_until); they consume what they return. When a
// framed read fails, nothing is consumed: the bytes that arrived stay buffered (see buffered())
// for the next call, so a timed-out read_line can simply be called again and loses nothing.
//   - errc::timed_out, errc::cancelled, …: the stream's error; the stream stays usable when
//     the stream itself does (a StreamSocket after a timeout or cancel()).
//   - errc::end_of_stream: the peer closed its side before the delimiter or the count came;
//     buffered() holds what did arrive (empty when the end came between frames).
//   - errc::line_too_long: no delimiter within max_length bytes; those bytes stay buffered,
//     to be consumed (consume(), discard_until()) or read otherwise.
//   - errc::invalid_argument: a length above read_capacity, or an empty delimiter.
//   - errc::out_of_memory: the first read could not allocate the read buffer.
// The buffer is compacted (the unread bytes moved to its front) only when a read needs the room
// behind them; a call that is served from the buffer makes no system call.
//
// Writing. write() copies into the write buffer when the bytes fit; otherwise it writes the
// buffer and the new bytes together in one gathered write (writev), without copying them.
// flush() writes what is buffered. After a write() error an unknown prefix of the buffered bytes
// and of its `data` has gone out: the stream is then only good for closing. After a flush()
// error the bytes it did not write stay buffered (a flush that timed out can be called again).
// Destroying a BufferedStream drops what was not flushed.
//
// One capsule at a time may read, and one write (they use separate buffers). Every blocking call
// suspends only the calling capsule; call them from a capsule (plain threads get
// errc::not_in_capsule from the stream). buffered(), consume() and pending_write(): any thread
// that owns the object.
//
// Example (a line protocol, from a capsule):
//   aem::BufferedStream io(stream);   // stream: a TcpStream, a UnixStream, …
//   for (;;) {
//     auto line = io.read_line(1024, 30s);
//     if (!line) {
//       if (line.error() != aem::errc::line_too_long) break;  // closed, timed out, …
//       (void)io.discard_until("\n", 30s);                      // skip it and go on
//       if (!io.write("-ERR line too long\r\n")) break;
//     } else if (!io.write("+" + std::string(*line) + "\r\n")) {
//       break;
//     }
//     if (io.buffered().empty() && !io.flush(30s)) break;  // answer a pipelined batch at once
//   }
class AEM_EXPORT BufferedStream {
 public:
  template <ByteStream S>
  explicit BufferedStream(S& stream, BufferedStreamOptions options = {}) noexcept
      : stream_(&stream), operations_(&kOperations<S>), options_(options) {}
  template <ByteStream S>
  BufferedStream(S&& stream, BufferedStreamOptions options = {}) = delete;  // it must outlive the buffer

  BufferedStream(BufferedStream&&) noexcept = default;
  BufferedStream& operator=(BufferedStream&&) noexcept = default;
  ~BufferedStream() = default;

  // ---- reading ----

  // buffered returns the bytes read from the stream and not yet consumed (buffered_text: as
  // characters); no I/O. A view valid until the next call that reads. Any thread that owns the
  // object.
  std::span<const std::byte> buffered() const noexcept { return {read_buffer_.get() + begin_, end_ - begin_}; }
  std::string_view buffered_text() const noexcept { return as_text(buffered()); }
  // consume drops the first `count` bytes of buffered() (at most all of them).
  void consume(std::size_t count) noexcept;

  // fill reads once from the stream into the buffer, behind what is buffered, and returns the
  // bytes added: 0 at the end of the stream. Errors: as the stream's read, errc::resource_limit
  // when the buffer is full (read_capacity bytes buffered), errc::out_of_memory. Capsule.
  Result<std::size_t> fill(Deadline deadline = {});
  // fill_at_least reads until at least `count` bytes are buffered. Errors: errc::end_of_stream
  // (what arrived stays buffered), errc::invalid_argument (count > read_capacity), and fill's.
  // Capsule.
  Result<void> fill_at_least(std::size_t count, Deadline deadline = {});
  // peek returns every buffered byte, once at least `count` are there (see fill_at_least);
  // nothing is consumed. Capsule.
  Result<std::span<const std::byte>> peek(std::size_t count = 1, Deadline deadline = {});

  // read_until returns the bytes up to and including the first `delimiter`, at most
  // `max_length` bytes with the delimiter, and consumes them. Errors (nothing consumed):
  // errc::line_too_long, errc::end_of_stream, errc::invalid_argument (max_length > read_capacity
  // or an empty delimiter), and the stream's. Capsule.
  Result<std::span<const std::byte>> read_until(std::span<const std::byte> delimiter, std::size_t max_length,
                                                Deadline deadline = {});
  Result<std::string_view> read_until(std::string_view delimiter, std::size_t max_length, Deadline deadline = {});
  // read_line returns the next line without its "\n" (nor a "\r" before it, unless
  // BufferedStreamOptions::strip_carriage_return is off) and consumes it with its line end.
  // max_length counts the line end: read_line(5) takes "abc\r\n", not "abcd\r\n". Errors: as
  // read_until's. Capsule.
  Result<std::string_view> read_line(std::size_t max_length, Deadline deadline = {});
  // discard_until consumes everything up to and including the next `delimiter`, however far it
  // is, and returns how many bytes it dropped (to skip an over-long line, say). After an error
  // what it already dropped is gone and the rest stays buffered. Errors: errc::end_of_stream,
  // errc::invalid_argument (an empty delimiter, or one longer than read_capacity), the
  // stream's. Capsule.
  Result<std::size_t> discard_until(std::span<const std::byte> delimiter, Deadline deadline = {});
  Result<std::size_t> discard_until(std::string_view delimiter, Deadline deadline = {}) {
    return discard_until(std::as_bytes(std::span(delimiter.data(), delimiter.size())), deadline);
  }

  // read_exact returns the next `count` bytes (a length-framed message) as a view into the
  // buffer and consumes them. Errors (nothing consumed): errc::end_of_stream,
  // errc::invalid_argument (count > read_capacity), the stream's. Capsule.
  Result<std::span<const std::byte>> read_exact(std::size_t count, Deadline deadline = {});
  // read_exact fills `out`: first from the buffer, then from the stream (straight into `out`
  // for what exceeds the read buffer: no second copy). Errors: errc::end_of_stream and the
  // stream's; nothing is consumed when `out` fits in read_capacity, else an unknown prefix of
  // `out` is filled and consumed. Capsule.
  Result<void> read_exact(std::span<std::byte> out, Deadline deadline = {});
  Result<void> read_exact(std::span<char> out, Deadline deadline = {}) {
    return read_exact(std::as_writable_bytes(out), deadline);
  }
  // read copies what is buffered into `out`, or else reads once (straight into `out` when it is
  // at least read_capacity bytes), like StreamSocket::read: returns the count, 0 at the end of
  // the stream (or for an empty `out`). Errors: the stream's, errc::out_of_memory. Capsule.
  Result<std::size_t> read(std::span<std::byte> out, Deadline deadline = {});
  Result<std::size_t> read(std::span<char> out, Deadline deadline = {}) {
    return read(std::as_writable_bytes(out), deadline);
  }
  // read_some returns everything buffered, reading once first if nothing is, and consumes it:
  // a view into the buffer, empty at the end of the stream. Errors: the stream's,
  // errc::out_of_memory. Capsule.
  Result<std::span<const std::byte>> read_some(Deadline deadline = {});

  // ---- writing ----

  // write buffers `data` when it fits in the write buffer's free room; otherwise it writes the
  // buffered bytes and `data` together (writev), until all are out. Errors: the stream's (see
  // the class comment), errc::out_of_memory. Capsule.
  Result<void> write(std::span<const std::byte> data, Deadline deadline = {});
  Result<void> write(std::string_view text, Deadline deadline = {}) {
    return write(std::as_bytes(std::span(text.data(), text.size())), deadline);
  }
  // flush writes everything buffered. After an error what was not written stays buffered (after
  // errc::timed_out or errc::cancelled flush can be called again). Errors: the stream's.
  // Capsule.
  Result<void> flush(Deadline deadline = {});
  // pending_write returns the bytes buffered for writing.
  std::size_t pending_write() const noexcept { return write_length_; }

  // options returns the options the BufferedStream was made with.
  const BufferedStreamOptions& options() const noexcept { return options_; }

 private:
  // Operations call the stream's functions; one table per stream type.
  struct Operations {
    Result<std::size_t> (*read)(void* stream, std::span<std::byte> buffer, Deadline deadline);
    Result<std::size_t> (*write)(void* stream, std::span<const std::byte> data, Deadline deadline);
    Result<std::size_t> (*writev)(void* stream, std::span<const iovec> buffers, Deadline deadline);
  };
  template <typename S>
  static constexpr Operations kOperations = {
      [](void* s, std::span<std::byte> buffer, Deadline d) { return static_cast<S*>(s)->read(buffer, d); },
      [](void* s, std::span<const std::byte> data, Deadline d) { return static_cast<S*>(s)->write(data, d); },
      [](void* s, std::span<const iovec> buffers, Deadline d) { return static_cast<S*>(s)->writev(buffers, d); },
  };

  // read_into_buffer reads once into the free room behind the buffered bytes, moving them to the
  // front first when fewer than `room` bytes are free there; returns the count (0: the end).
  Result<std::size_t> read_into_buffer(std::size_t room, Deadline deadline);
  // find_delimiter returns where in buffered() the first `delimiter` starts, looking at the
  // starts in [from, last_start), or kNotFound.
  std::size_t find_delimiter(std::span<const std::byte> delimiter, std::size_t from, std::size_t last_start) const noexcept;
  // write_gathered writes the write buffer and `data` with writev until both are out.
  Result<void> write_gathered(std::span<const std::byte> data, Deadline deadline);

  static constexpr std::size_t kNotFound = ~std::size_t{0};

  void* stream_;
  const Operations* operations_;
  BufferedStreamOptions options_;
  std::unique_ptr<std::byte[]> read_buffer_;
  std::size_t begin_ = 0;  // buffered() is [begin_, end_) of read_buffer_
  std::size_t end_ = 0;
  bool at_end_ = false;    // the stream reported its end: no more reads
  std::unique_ptr<std::byte[]> write_buffer_;
  std::size_t write_length_ = 0;
};

}  // namespace aem
