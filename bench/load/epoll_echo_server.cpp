// epoll_echo_server.cpp — the conventional baseline of the load benchmark: one thread, one
// edge-triggered epoll set, non-blocking sockets. Written the way a careful C++ engineer
// would, so aem is compared against a good server rather than a straw man: no epoll_ctl per
// message, no per-message allocation, no read that is known to return EAGAIN.
//
// usage: aem_epoll_echo_server [--port N]   (serves 127.0.0.1:N until SIGINT/SIGTERM)
#include <sys/epoll.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common.hpp"

namespace {

using aem_load::fail;

constexpr const char* kUsage =
    "usage: aem_epoll_echo_server [--port N]\n"
    "Single-threaded edge-triggered epoll echo server on 127.0.0.1 (bench/load/README.md).\n"
    "Serves until SIGINT or SIGTERM.";

// Events taken per epoll_wait: enough that 10,000 busy connections cost few calls.
constexpr int kMaxEvents = 512;
// One read buffer for every connection; its size only bounds how much one read takes.
constexpr std::size_t kReadBufferBytes = 64 * 1024;

// Connection holds only what survives between events: echo bytes the socket would not take.
// Empty std::string owns no heap, so an idle connection costs sizeof(Connection).
struct Connection {
  std::string unsent;
  bool open = false;
};

class EchoServer {
 public:
  EchoServer(const char* program, int port, const aem_load::StopSignals& stop)
      : program_(program), stop_fd_(stop.fd()), reserve_(program) {
    listen_fd_ = aem_load::listen_loopback(program, port, SOCK_NONBLOCK);
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) fail(program, "epoll_create1");
    aem_load::epoll_watch(program, epoll_fd_, listen_fd_, EPOLLIN | EPOLLET);
    aem_load::epoll_watch(program, epoll_fd_, stop_fd_, EPOLLIN);
  }

  void run() {
    epoll_event events[kMaxEvents];
    for (;;) {
      const int ready = aem_load::epoll_wait_events(program_, epoll_fd_, events, kMaxEvents);
      for (int i = 0; i < ready; ++i) {
        const int fd = events[i].data.fd;
        if (fd == listen_fd_) {
          aem_load::accept_pending(program_, listen_fd_, reserve_, [this](int accepted) { add_connection(accepted); });
        } else if (fd == stop_fd_) {
          return;
        } else {
          serve(fd, events[i].events);
        }
      }
    }
  }

  void report() const {
    std::fprintf(stderr, "%s: stopped after %llu connections, %llu bytes echoed\n", program_,
                 static_cast<unsigned long long>(accepted_), static_cast<unsigned long long>(echoed_bytes_));
  }

 private:
  void add_connection(int fd) {
    // Descriptors are small dense integers, so a vector indexed by fd replaces any lookup.
    if (static_cast<std::size_t>(fd) >= connections_.size()) connections_.resize(static_cast<std::size_t>(fd) * 2 + 1);
    connections_[static_cast<std::size_t>(fd)].open = true;
    ++accepted_;
    // EPOLLOUT is registered once: with EPOLLET a TCP socket reports it only after a write
    // found the send buffer full, so partial writes never cost an epoll_ctl(MOD) pair.
    aem_load::epoll_watch(program_, epoll_fd_, fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET);
  }

  void close_connection(int fd) {
    close(fd);  // also removes it from the epoll set: nobody else holds the description
    Connection& connection = connections_[static_cast<std::size_t>(fd)];
    std::string().swap(connection.unsent);
    connection.open = false;
  }

  // serve runs on every event of a connection: first the backlog, then reading until the
  // socket is drained or the peer stops taking our echo (then EPOLLOUT brings us back here).
  void serve(int fd, uint32_t events) {
    // A hang-up arrives as the same edge as the last data; only a read returning 0 sees it.
    const bool peer_closing = (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
    Connection& connection = connections_[static_cast<std::size_t>(fd)];
    if (!connection.open) return;  // closed earlier in this batch of events
    if (!flush(fd, connection)) return;
    for (;;) {
      const ssize_t got = read(fd, buffer_.data(), buffer_.size());
      if (got > 0) {
        if (!echo(fd, connection, buffer_.data(), static_cast<std::size_t>(got))) return;
        // epoll(7): on a stream socket a short read proves the receive buffer is empty, so
        // the read that would only say EAGAIN is skipped.
        if (static_cast<std::size_t>(got) < buffer_.size() && !peer_closing) return;
        continue;
      }
      if (got == 0) return close_connection(fd);
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      return close_connection(fd);  // ECONNRESET and friends: the client is gone
    }
  }

  // echo writes `data` back; what the socket will not take waits in `unsent`. Returns false
  // when reading must stop (backlog or closed).
  bool echo(int fd, Connection& connection, const char* data, std::size_t size) {
    std::size_t done = 0;
    while (done < size) {
      const ssize_t put = write(fd, data + done, size - done);
      if (put >= 0) {
        done += static_cast<std::size_t>(put);
        continue;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        connection.unsent.append(data + done, size - done);
        echoed_bytes_ += done;
        return false;
      }
      close_connection(fd);
      return false;
    }
    echoed_bytes_ += size;
    return true;
  }

  // flush retries the backlog; true when it is empty (reading may continue).
  bool flush(int fd, Connection& connection) {
    if (connection.unsent.empty()) return true;
    std::string pending;
    pending.swap(connection.unsent);
    return echo(fd, connection, pending.data(), pending.size()) && connection.unsent.empty();
  }

  const char* program_;
  int stop_fd_;
  aem_load::FdReserve reserve_;
  int listen_fd_ = -1;
  int epoll_fd_ = -1;
  std::vector<Connection> connections_;
  std::vector<char> buffer_ = std::vector<char>(kReadBufferBytes);
  uint64_t accepted_ = 0;
  uint64_t echoed_bytes_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  aem_load::Args args(argc, argv, kUsage);
  const int port = args.port();
  args.done();
  aem_load::raise_fd_limit(args.program());
  const aem_load::StopSignals stop(args.program());
  EchoServer server(args.program(), port, stop);
  std::fprintf(stderr, "%s: listening on 127.0.0.1:%d\n", args.program(), port);
  server.run();
  server.report();
  return EXIT_SUCCESS;
}
