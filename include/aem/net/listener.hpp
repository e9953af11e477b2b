// net/listener.hpp — ListenerSocket: binding, listening and accepting, the part TcpListener
// and UnixListener share.
#pragma once

#include <aem/export.hpp>
#include <aem/net/address.hpp>
#include <aem/net/socket.hpp>
#include <aem/result.hpp>
#include <aem/time.hpp>

namespace aem {

// ListenerSocket is the base of TcpListener and UnixListener (see Socket for ownership,
// concurrency and cancellation: close() from another capsule ends a blocked accept with
// errc::cancelled, which is how an accept loop is stopped).
class AEM_EXPORT ListenerSocket : public Socket {
 protected:
  ListenerSocket() noexcept = default;
  explicit ListenerSocket(int fd) noexcept : Socket(fd) {}

  // open creates a socket for `address`, applies `options`, binds and listens. Any thread.
  static Result<int> open(const SocketAddress& address, const BindOptions& options);
  // adopt_fd checks that `fd` is a listening stream socket (of an IP family when `ip`, else a
  // Unix one) and makes it non-blocking and close-on-exec; on failure `fd` is left as it was.
  // Any thread. Errors: errc::invalid_argument (not such a socket), the errno of getsockopt/fcntl.
  static Result<int> adopt_fd(int fd, bool ip);
  // accept_fd waits for a connection and returns its descriptor (non-blocking, close-on-exec);
  // `peer`, if not null, receives the peer's address. Call from a capsule.
  Result<int> accept_fd(Deadline deadline, SocketAddress* peer);
  // accept_as is accept_fd wrapped in the stream type that owns the new descriptor.
  template <typename Stream>
  Result<Stream> accept_as(Deadline deadline, SocketAddress* peer) {
    Result<int> fd = accept_fd(deadline, peer);
    if (!fd) return fd.error();
    return Stream(*fd);
  }
};

}  // namespace aem
