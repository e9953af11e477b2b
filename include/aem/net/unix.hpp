// net/unix.hpp — Unix-domain stream sockets: UnixStream and UnixListener.
#pragma once

#include <aem/export.hpp>
#include <aem/net/address.hpp>
#include <aem/net/listener.hpp>
#include <aem/net/socket.hpp>
#include <aem/net/stream.hpp>
#include <aem/result.hpp>
#include <aem/time.hpp>

#include <utility>

namespace aem {

// UnixStream is a connected Unix-domain stream socket, with the reads and writes of
// StreamSocket.
//
// Example (from a capsule):
//   auto stream = aem::UnixStream::connect(*aem::SocketAddress::unix_path("/run/app.sock"));
//   if (stream) (void)stream->write_all(message);
class AEM_EXPORT UnixStream : public StreamSocket {
 public:
  UnixStream() noexcept = default;
  // UnixStream adopts a connected Unix stream socket; it should be non-blocking. Any thread.
  explicit UnixStream(int fd) noexcept : StreamSocket(fd) {}

  // connect connects to a listening Unix socket. Call from a capsule. Errors:
  // errc::invalid_argument (not a Unix address), std::errc::no_such_file_or_directory,
  // std::errc::connection_refused (nobody listens), and the errors of
  // StreamSocket's blocking calls.
  static Result<UnixStream> connect(const SocketAddress& address, Deadline deadline = {});

  // pair returns two connected streams (socketpair). Any thread. Errors: the errno of
  // socketpair.
  static Result<std::pair<UnixStream, UnixStream>> pair();
};

// UnixListener accepts Unix-domain stream connections. Binding a path creates the socket
// file; it is not removed on close (unlink it, or use an abstract "@name" address).
class AEM_EXPORT UnixListener : public ListenerSocket {
 public:
  UnixListener() noexcept = default;

  // bind listens on `address` (BindOptions::reuse_* do not apply to Unix sockets). Any thread.
  // Errors: errc::invalid_argument (not a Unix address), std::errc::address_in_use (the path
  // exists), and the errno of socket/bind/listen.
  static Result<UnixListener> bind(const SocketAddress& address, const BindOptions& options = {});

  // adopt takes ownership of `fd`, a listening Unix stream socket made elsewhere (see
  // TcpListener::adopt). Any thread. Errors: errc::invalid_argument (not a listening Unix
  // stream socket; `fd` is then left open), the errno of getsockopt/fcntl.
  static Result<UnixListener> adopt(int fd);

  // accept waits for the next connection. Call from a capsule. Errors: as TcpListener::accept.
  Result<UnixStream> accept(Deadline deadline = {}) { return accept_as<UnixStream>(deadline, nullptr); }

 private:
  explicit UnixListener(int fd) noexcept : ListenerSocket(fd) {}
};

}  // namespace aem
