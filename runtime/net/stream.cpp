// stream.cpp — StreamSocket: reads and writes on a connected TCP or Unix stream.
#include "runtime/net/socket_io.hpp"
#include "runtime/net/send_queue.hpp"

#include <aem/net/stream.hpp>

#include <sys/socket.h>

#include <cassert>
#include <climits>
#include <utility>

namespace aem {
namespace {

// Linux caps one transfer at 0x7ffff000 bytes anyway; longer buffers make a short count.
constexpr std::size_t kMaxTransfer = 0x7ffff000;

detail::IoRequest transfer_request(detail::IoOpcode opcode, const void* data, std::size_t size) {
  detail::IoRequest request;
  request.opcode = opcode;
  request.buffer = const_cast<void*>(data);
  request.length = size < kMaxTransfer ? size : kMaxTransfer;
  // MSG_NOSIGNAL: a write to a reset connection reports EPIPE instead of killing the process.
  if (opcode == detail::IoOpcode::send) request.flags = MSG_NOSIGNAL;
  return request;
}

Result<std::size_t> as_count(Result<int> result) {
  if (!result) return result.error();
  return static_cast<std::size_t>(*result);
}

}  // namespace

Result<std::size_t> StreamSocket::read(std::span<std::byte> buffer, Deadline deadline) {
  detail::SharedFd& socket = shared_fd();
  detail::IoRequest request = transfer_request(detail::IoOpcode::recv, buffer.data(), buffer.size());
  // After a read that emptied the socket the next one waits for data before it tries, as nginx
  // takes a short read to mean "not ready": in a request-response exchange the peer sends
  // again only once it has our answer, so a first try would fail with EAGAIN (a wasted pass
  // through the socket layer per request).
  request.poll_first = socket.read_drained();
  Result<int> result = detail::socket_perform(socket, request, deadline);
  if (result) socket.note_read(*result > 0 && static_cast<std::size_t>(*result) < request.length);
  return as_count(std::move(result));
}

Result<void> StreamSocket::read_exact(std::span<std::byte> buffer, Deadline deadline) {
  return ::aem::detail::read_exact_with(*this, buffer, deadline);
}

Result<std::size_t> StreamSocket::write(std::span<const std::byte> data, Deadline deadline) {
  return as_count(
      detail::socket_perform(shared_fd(), transfer_request(detail::IoOpcode::send, data.data(), data.size()), deadline));
}

Result<void> StreamSocket::write_all(std::span<const std::byte> data, Deadline deadline) {
  return ::aem::detail::write_all_with(*this, data, deadline);
}

Result<std::size_t> StreamSocket::writev(std::span<const iovec> buffers, Deadline deadline) {
  if (buffers.size() > IOV_MAX) return errc::invalid_argument;
  msghdr message{};
  message.msg_iov = const_cast<iovec*>(buffers.data());
  message.msg_iovlen = buffers.size();
  return detail::socket_message(shared_fd(), detail::IoOpcode::sendmsg, &message, MSG_NOSIGNAL, deadline);
}

StreamSocket::StreamSocket(StreamSocket&& other) noexcept
    : Socket(std::move(other)), sends_(std::exchange(other.sends_, nullptr)) {}

StreamSocket& StreamSocket::operator=(StreamSocket&& other) noexcept {
  if (this != &other) {
    if (sends_ != nullptr) std::exchange(sends_, nullptr)->release(shared_fd());
    Socket::operator=(std::move(other));
    sends_ = std::exchange(other.sends_, nullptr);
  }
  return *this;
}

StreamSocket::~StreamSocket() {
  if (sends_ == nullptr) return;
  assert(sends_->on_home_core() && "aem: a stream with sends queued destroyed off its send core");
  sends_->release(shared_fd());
}

Result<void> StreamSocket::send(EventData data) {
  if (sends_ == nullptr) {
    Result<detail::SendQueue*> created = detail::SendQueue::create();
    if (!created) return created.error();
    sends_ = *created;
  } else {
    sends_->wait_room();  // a capsule sending into a full queue waits for the peer (backpressure)
  }
  return sends_->push(shared_fd(), std::move(data));
}

Result<void> StreamSocket::flush(Deadline deadline) {
  if (sends_ == nullptr) return {};
  return sends_->flush(deadline);
}

Result<void> StreamSocket::shutdown(Shutdown how) {
  const int mode = how == Shutdown::read ? SHUT_RD : how == Shutdown::write ? SHUT_WR : SHUT_RDWR;
  return detail::sys_result(::shutdown(fd(), mode));
}

Result<SocketAddress> StreamSocket::peer_address() const { return detail::socket_address(fd(), true); }

}  // namespace aem
