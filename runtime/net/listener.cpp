// listener.cpp — ListenerSocket: bind + listen, and accept, for TCP and Unix listeners.
#include "io/accept_backoff.hpp"
#include "runtime/net/socket_io.hpp"
#include "runtime/sched/core.hpp"

#include <aem/capsule.hpp>

#include <aem/net/listener.hpp>

#include <fcntl.h>
#include <sys/socket.h>

#include <algorithm>

namespace aem {

Result<int> ListenerSocket::open(const SocketAddress& address, const BindOptions& options) {
  if (options.backlog < 0) return errc::invalid_argument;
  Result<int> fd = detail::bind_socket(address, SOCK_STREAM, options.reuse_address, options.reuse_port);
  if (!fd) return fd;
  detail::SharedFd owner(*fd);
  if (::listen(*fd, options.backlog) != 0) return errno_code(errno);
  return owner.release();
}

Result<int> ListenerSocket::adopt_fd(int fd, bool ip) {
  int domain = 0;
  int type = 0;
  int listening = 0;
  socklen_t size = sizeof domain;
  if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &size) != 0) return errno_code(errno);
  size = sizeof type;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &size) != 0) return errno_code(errno);
  size = sizeof listening;
  if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) != 0) return errno_code(errno);
  const bool family_fits = ip ? (domain == AF_INET || domain == AF_INET6) : domain == AF_UNIX;
  if (!family_fits || type != SOCK_STREAM || listening == 0) return errc::invalid_argument;
  const int status = ::fcntl(fd, F_GETFL);
  if (status < 0 || ::fcntl(fd, F_SETFL, status | O_NONBLOCK) != 0) return errno_code(errno);
  if (::fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) return errno_code(errno);
  return fd;
}

Result<int> ListenerSocket::accept_fd(Deadline deadline, SocketAddress* peer) {
  sockaddr_storage storage{};
  socklen_t length = sizeof storage;
  detail::IoRequest request;
  request.opcode = detail::IoOpcode::accept;
  request.flags = SOCK_NONBLOCK | SOCK_CLOEXEC;
  request.address = reinterpret_cast<sockaddr*>(&storage);
  request.address_length = &length;
  Result<int> fd = detail::socket_perform(shared_fd(), request, deadline);
  // Out of descriptors or memory: pause and try again (as on_accept does) instead of handing
  // the shortage to an accept loop that would spin on it or give up for good. Each pause is
  // counted (CoreMetrics::accept_backoffs) and raised as an on_error event.
  Duration pause = Duration::zero();
  // The category is compared by address, without a member call: UBSan's vptr check probes
  // memory through a pipe, which fails (and reports a false error) while descriptors are out.
  while (!fd && &fd.error().category() == &std::generic_category() && detail::fd_exhausted(fd.error().value())) {
    detail::Core* core = detail::Core::current_core();
    if (core == nullptr) break;
    if (detail::EventLayer* events = core->events()) events->note_accept_backoff(fd.error().value());
    if (pause == Duration::zero()) detail::log_accept_shortage(this->fd(), fd.error().value());  // once per shortage
    pause = detail::next_accept_backoff(pause);
    const TimePoint resume = std::min(Clock::now() + pause, deadline.time_point());
    this_capsule::sleep_until(resume);
    if (deadline.expired()) return errc::timed_out;
    storage = {};
    length = sizeof storage;
    fd = detail::socket_perform(shared_fd(), request, deadline);
  }
  if (fd && pause != Duration::zero()) detail::log(LogLevel::info, "listener fd %d accepts again", this->fd());
  if (fd && peer != nullptr) {
    // An unnamed Unix peer has an address of just the family; from_sockaddr takes that too.
    if (Result<SocketAddress> address = SocketAddress::from_sockaddr(request.address, length)) *peer = *address;
  }
  return fd;
}

}  // namespace aem
