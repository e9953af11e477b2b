// net/stream.hpp — StreamSocket: reading and writing a connected byte stream (TCP or Unix
// domain), the part TcpStream and UnixStream share.
#pragma once

#include <aem/detail/byte_stream_calls.hpp>
#include <aem/event_data.hpp>
#include <aem/export.hpp>
#include <aem/net/address.hpp>
#include <aem/net/socket.hpp>
#include <aem/result.hpp>
#include <aem/time.hpp>

#include <cstddef>
#include <span>
#include <string_view>
#include <sys/uio.h>

namespace aem {

namespace detail {
class SendQueue;
}  // namespace detail

// Shutdown says which direction of a stream shutdown() ends.
enum class Shutdown : std::uint8_t { read, write, both };

// StreamSocket is the base of TcpStream and UnixStream (see Socket for ownership, concurrency
// and cancellation). Every blocking call takes an optional deadline and suspends only the
// calling capsule.
// Errors common to the blocking calls: errc::timed_out (the deadline passed), errc::cancelled
// (cancel() or close() from elsewhere), errc::not_in_capsule (called from a plain thread),
// errc::shutting_down (the runtime stops), or the errno of the system call as a
// std::generic_category code (std::errc::connection_reset, std::errc::broken_pipe, …).
// Writes never raise SIGPIPE: a write to a closed peer fails with std::errc::broken_pipe.
//
// Example:
//   std::array<std::byte, 4096> buffer;
//   while (auto n = stream.read(buffer, 30s)) {
//     if (*n == 0) break;  // the peer closed its side
//     if (!stream.write_all(std::span(buffer).first(*n))) break;
//   }
class AEM_EXPORT StreamSocket : public Socket, public detail::TextOverloads<StreamSocket> {
 public:
  // Each of read, read_exact, write and write_all also takes a char buffer or text.
  using TextOverloads::read;
  using TextOverloads::read_exact;
  using TextOverloads::write;
  using TextOverloads::write_all;

  // read reads what has arrived, at most buffer.size() bytes, waiting until at least one byte
  // (or the end of the stream) is there. Returns the count; 0 means the peer shut down its
  // writing side (or buffer is empty). Call from a capsule.
  Result<std::size_t> read(std::span<std::byte> buffer, Deadline deadline = {});
  // read_exact fills the whole buffer. Errors: errc::end_of_stream if the peer closes first;
  // after any error the buffer holds an unspecified prefix of the data. Call from a capsule.
  Result<void> read_exact(std::span<std::byte> buffer, Deadline deadline = {});

  // write writes some of `data` (at least one byte unless data is empty) and returns how much:
  // a short count when the socket's send buffer fills up. Call from a capsule.
  // The std::string_view overloads take text: a char array converts up to its first NUL, so
  // pass std::string_view(buffer, count) for raw bytes in one.
  Result<std::size_t> write(std::span<const std::byte> data, Deadline deadline = {});
  // write_all writes all of `data`, however many writes it takes. After an error an unknown
  // prefix of `data` has been sent: the stream is then only good for closing. Call from a
  // capsule.
  Result<void> write_all(std::span<const std::byte> data, Deadline deadline = {});
  // writev writes some of the buffers, in order, as one call (a gathered write), and returns
  // the bytes written. At most IOV_MAX (1024) buffers. Errors: errc::invalid_argument for more.
  // Call from a capsule.
  Result<std::size_t> writev(std::span<const iovec> buffers, Deadline deadline = {});

  // send queues `data` to be written after everything sent before it and returns at once
  // (unless the queue is past its bound, see Backpressure): the stream sends it from its core in the background, as a gathered
  // write when several blocks wait, and frees each block when it is out. Meant for handlers
  // that answer and return (on_data with Executor::keepalive): the handler's capsule goes back
  // to the pool instead of waiting for the write. Call on a core (a capsule, or a handler),
  // always the same one for a stream: the core of its first send().
  // Backpressure: past Config::send_queue_bound queued bytes (256 KiB by default), the stream's
  // on_data registrations on the send core pause their receive, and a capsule that calls send()
  // while the queue is past the bound suspends until it has drained to half the bound, then
  // queues its bytes (a handler on the dispatcher does not suspend: the paused receive holds
  // its peer back). One send() is always taken at once, however large.
  // A failed send makes the stream's send error sticky: the bytes still queued are dropped and
  // every later send() (its `data` dropped too) and flush() return that error. Do not mix with
  // write()/write_all()/writev() while sends are queued: their bytes could overtake.
  // close() abandons what is queued (the socket is shut down so that a send to a peer that does
  // not read ends too); destroying the stream does not: the queued bytes still go out, then the
  // descriptor is closed. Destroy or move-assign a stream with sends queued only on its send core,
  // and do not move it then.
  // Errors: the sticky error (std::errc::broken_pipe, connection_reset, …; errc::cancelled or
  // errc::shutting_down when the runtime stopped the send), errc::invalid_argument (an empty
  // EventData — a 0-byte one is fine and sends nothing — or another core),
  // errc::not_in_capsule (not on a core), errc::shutting_down, errc::out_of_memory,
  // std::errc::bad_file_descriptor once closed.
  //
  // Example (an echo handler that never suspends):
  //   aem::on_data(*stream, [stream](aem::EventData bytes) { (void)stream->send(std::move(bytes)); },
  //                {.exec = aem::Executor::keepalive});
  Result<void> send(EventData data);
  // flush waits until everything send() queued is written (handed to the kernel), and returns
  // the sticky send error if there is one. Call from a capsule on the stream's send core.
  // Errors: as send's sticky error, errc::timed_out, errc::not_in_capsule,
  // errc::invalid_argument (another core).
  Result<void> flush(Deadline deadline = {});

  // shutdown ends one or both directions (shutdown(2)): after Shutdown::write the peer reads
  // the end of the stream and may still write back. A capsule blocked in read wakes up with
  // 0 after Shutdown::read or Shutdown::both. Any thread. Errors: the errno of shutdown(2)
  // (std::errc::not_connected if the peer is gone).
  Result<void> shutdown(Shutdown how);

  // peer_address returns the address of the connected peer (getpeername). Any thread.
  Result<SocketAddress> peer_address() const;

 protected:
  StreamSocket() noexcept = default;
  explicit StreamSocket(int fd) noexcept : Socket(fd) {}
  StreamSocket(StreamSocket&& other) noexcept;
  StreamSocket& operator=(StreamSocket&& other) noexcept;
  // ~StreamSocket hands the bytes still queued by send() over to the send queue, which closes
  // the descriptor once they are out.
  ~StreamSocket();

 private:
  detail::SendQueue* sends_ = nullptr;  // created by the first send()
};

}  // namespace aem
