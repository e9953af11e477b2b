// The backend contract, checked on io_uring and on the epoll fallback alike: every test case
// runs once per backend (the io_uring run is skipped where the machine refuses io_uring).
#include "io/buffer_ring.hpp"
#include "io/uring/uring_backend.hpp"
#include "support/backend_helpers.hpp"

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <set>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

using namespace std::chrono_literals;
using aem::detail::Backend;
using aem::detail::IoOpcode;
using aem::detail::IoRequest;
using aem_test::EpollKind;
using aem_test::Recorder;
using aem_test::UringKind;

#define BACKENDS UringKind, EpollKind

namespace {

IoRequest transfer(IoOpcode opcode, int fd, void* buffer, std::size_t length, std::uint32_t flags = 0) {
  IoRequest r;
  r.opcode = opcode;
  r.fd = fd;
  r.buffer = buffer;
  r.length = length;
  r.flags = flags;
  return r;
}

IoRequest poll_request(IoOpcode opcode, int fd, std::uint32_t mask) {
  IoRequest r;
  r.opcode = opcode;
  r.fd = fd;
  r.flags = mask;
  return r;
}

__kernel_timespec after(std::chrono::nanoseconds delay) {
  const auto at = std::chrono::duration_cast<std::chrono::nanoseconds>((std::chrono::steady_clock::now() + delay).time_since_epoch()).count();
  return __kernel_timespec{at / 1'000'000'000, at % 1'000'000'000};
}

// complete_message runs a sendmsg or recvmsg over `iov` to its end and returns its result.
int complete_message(Backend& backend, IoOpcode opcode, int fd, iovec* iov, std::size_t count) {
  msghdr message{};
  message.msg_iov = iov;
  message.msg_iovlen = count;
  IoRequest request = transfer(opcode, fd, nullptr, 0);
  request.message = &message;
  Recorder recorder;
  backend.submit(request, &recorder.completion, nullptr);
  aem_test::settle_all(backend);
  REQUIRE(recorder.finals == 1);
  return recorder.last();
}

// Listener is a loopback TCP socket listening on a free port.
struct Listener {
  int fd = -1;
  sockaddr_in address{};
  explicit Listener(int type_flags = 0) {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | type_flags, 0);
    REQUIRE(fd >= 0);
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof address;
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) == 0);
    REQUIRE(::listen(fd, 16) == 0);
  }
  ~Listener() { ::close(fd); }
  int connect_client() const {
    const int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(::connect(client, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
    return client;
  }
};

}  // namespace

TEST_CASE("uring backend: set-up takes the strongest flags the kernel grants") {
  auto backend = aem::detail::UringBackend::create(64);
  if (!backend && aem::detail::io_uring_refused(backend.error())) {
    MESSAGE("io_uring is not available here: " << backend.error().message());
    return;  // the epoll fallback covers this machine
  }
  REQUIRE(backend);
  const auto& f = (*backend)->features();
  // Every later flag needs SINGLE_ISSUER; DEFER_TASKRUN needs it too (kernel >= 6.1).
  if (f.defer_taskrun) CHECK(f.single_issuer);
  if (f.taskrun_flag) CHECK(f.defer_taskrun);  // asked for only where it is exact
  MESSAGE("single_issuer=" << f.single_issuer << " defer_taskrun=" << f.defer_taskrun << " coop_taskrun="
                           << f.coop_taskrun << " taskrun_flag=" << f.taskrun_flag << " msg_ring=" << f.msg_ring
                           << " ext_arg=" << f.ext_arg);
  CHECK(std::string((*backend)->name()) == "io_uring");
  CHECK((*backend)->in_flight() == 0);
}

TEST_CASE("uring backend: with TASKRUN_FLAG, an idle multishot operation is not work: its pending completion is") {
  auto created = aem::detail::UringBackend::create(64);
  if (!created && aem::detail::io_uring_refused(created.error())) {
    MESSAGE("io_uring is not available here: " << created.error().message());
    return;
  }
  REQUIRE(created);
  Backend& backend = **created;
  if (!backend.features().taskrun_flag) {
    MESSAGE("this kernel grants no IORING_SETUP_TASKRUN_FLAG: has_work counts operations in flight");
    return;
  }
  aem_test::Pipe pipe;
  Recorder readable;
  backend.submit(poll_request(IoOpcode::poll_multishot, pipe.fds[0], POLLIN), &readable.completion, nullptr);
  CHECK(backend.has_work());  // an SQE waits to be submitted
  backend.poll();
  // What the core loop and a yielding capsule ask: nothing to do, though an operation is in
  // flight, so neither enters the kernel.
  CHECK(backend.in_flight() == 1);
  CHECK_FALSE(backend.has_work());
  REQUIRE(::write(pipe.fds[1], "x", 1) == 1);
  // The kernel queues the poll's completion as deferred task work and says so in the SQ ring.
  for (int round = 0; !backend.has_work() && round < 5000; ++round) std::this_thread::sleep_for(1ms);
  CHECK(backend.has_work());
  CHECK(readable.calls() == 0);  // seen, not yet delivered: delivery is poll's or wait's
  CHECK(backend.poll() == 1);
  CHECK(readable.more == 1);
  CHECK(readable.results.front() == POLLIN);
  CHECK_FALSE(backend.has_work());
  backend.cancel(&readable.completion);
  aem_test::settle_all(backend);
  CHECK(readable.finals == 1);
}

TEST_CASE_TEMPLATE("backend: completions arrive once, only from poll or wait: in-flight drops to zero", K, BACKENDS) {
  auto backend = aem_test::make_backend<K>(8);
  if (!backend) return;
  aem_test::Pipe pipe;  // blocking, as a user may well pass it
  int* fds = pipe.fds;
  Recorder reads[20];
  char buffers[20][4];
  for (int i = 0; i < 20; ++i) {  // more than an 8-entry ring holds
    backend->submit(transfer(IoOpcode::read, fds[0], buffers[i], 1), &reads[i].completion, nullptr);
  }
  backend->poll();
  CHECK(backend->in_flight() == 20);
  // Reads waiting on an empty pipe are work only where the backend cannot see that nothing
  // waits for delivery (see Backend::has_work).
  CHECK(backend->has_work() == !backend->features().taskrun_flag);

  // An operation that can complete at once still completes in poll/wait, not in submit.
  Recorder write;
  backend->submit(transfer(IoOpcode::write, fds[1], const_cast<char*>("abcdefghijklmnopqrst"), 20), &write.completion, nullptr);
  CHECK(write.calls() == 0);
  CHECK(backend->has_work());
  aem_test::settle_all(*backend);
  CHECK(backend->in_flight() == 0);
  CHECK(write.results == std::vector<int>{20});
  std::string order;
  for (int i = 0; i < 20; ++i) {
    CHECK(reads[i].results == std::vector<int>{1});
    order += buffers[i][0];
  }
  CHECK(order.size() == 20);
}

TEST_CASE_TEMPLATE("backend: wait returns at its deadline, on a wake from a plain thread, and from another backend", K,
                   BACKENDS) {
  auto backend = aem_test::make_backend<K>(8);
  if (!backend) return;
  const auto t0 = std::chrono::steady_clock::now();
  backend->wait(t0 + 2ms, 1);
  CHECK(std::chrono::steady_clock::now() - t0 >= 2ms);

  std::thread waker([&] {
    std::this_thread::sleep_for(5ms);
    backend->wake(nullptr);
  });
  backend->wait(std::chrono::steady_clock::time_point::max(), 1);  // would hang without the wake
  waker.join();

  // From another core's backend (made on the thread that uses it, as a core does).
  std::thread other([&] {
    auto sender = aem_test::make_backend<K>(8);
    REQUIRE(sender);
    std::this_thread::sleep_for(5ms);
    backend->wake(sender.get());
    sender->poll();
  });
  backend->wait(std::chrono::steady_clock::time_point::max(), 1);
  other.join();
  CHECK(backend->in_flight() == 0);
}

TEST_CASE_TEMPLATE("backend: a coalesced wait takes a completion that comes while it sleeps in the same call", K,
                   BACKENDS) {
  auto backend = aem_test::make_backend<K>(8);
  if (!backend) return;
  aem_test::Pipe first;
  aem_test::Pipe second;
  Recorder reads[2];
  char buffers[2][4];
  backend->submit(transfer(IoOpcode::read, first.fds[0], buffers[0], 1), &reads[0].completion, nullptr);
  backend->submit(transfer(IoOpcode::read, second.fds[0], buffers[1], 1), &reads[1].completion, nullptr);
  backend->poll();
  REQUIRE(::write(first.fds[1], "a", 1) == 1);
  std::thread late([&] {
    std::this_thread::sleep_for(20ms);
    CHECK(::write(second.fds[1], "b", 1) == 1);
  });
  // A plain wait would come back with the first read alone; this one waits for both. io_uring
  // counts them while it sleeps and returns at the second; epoll sleeps to the deadline.
  const bool counts_asleep = std::string(backend->name()) == "io_uring";
  const auto t0 = std::chrono::steady_clock::now();
  const auto deadline = t0 + (counts_asleep ? 60s : 1s);
  const std::size_t delivered = backend->wait(deadline, 2);
  const auto waited = std::chrono::steady_clock::now() - t0;
  late.join();
  CHECK(delivered == 2);
  CHECK(reads[0].results == std::vector<int>{1});
  CHECK(reads[1].results == std::vector<int>{1});
  CHECK(buffers[0][0] == 'a');
  CHECK(buffers[1][0] == 'b');
  CHECK(backend->in_flight() == 0);
  if (counts_asleep) {
    CHECK(waited < 30s);  // ended by the count, not by the deadline
  } else {
    CHECK(waited >= 1s);
  }
}

TEST_CASE_TEMPLATE("backend: cancel_all ends in-flight operations with -ECANCELED", K, BACKENDS) {
  auto backend = aem_test::make_backend<K>(8);
  if (!backend) return;
  aem_test::Pipe pipe;
  int* fds = pipe.fds;
  Recorder read;
  Recorder poll;
  char buffer[8];
  backend->submit(transfer(IoOpcode::read, fds[0], buffer, sizeof buffer), &read.completion, nullptr);
  backend->submit(poll_request(IoOpcode::poll_multishot, fds[0], POLLIN), &poll.completion, nullptr);
  backend->poll();
  backend->cancel_all();
  aem_test::settle_all(*backend);
  CHECK(read.results == std::vector<int>{-ECANCELED});
  CHECK(poll.results == std::vector<int>{-ECANCELED});
}

TEST_CASE_TEMPLATE("backend: a deadline cancels a pending read: a read that can complete ignores it", K, BACKENDS) {
  auto backend = aem_test::make_backend<K>();
  if (!backend) return;
  aem_test::Pipe pipe;
  int* fds = pipe.fds;
  char buffer[8];
  const __kernel_timespec soon = after(2ms);
  const __kernel_timespec later = after(1h);
  Recorder timed_out;
  Recorder untimed;
  Recorder late;
  backend->submit(transfer(IoOpcode::read, fds[0], buffer, sizeof buffer), &timed_out.completion, &soon);
  aem_test::settle(*backend, [&] { return timed_out.finals == 1; });
  CHECK(timed_out.results == std::vector<int>{-ECANCELED});

  // Data already there: the read completes with it, the deadline does not matter.
  REQUIRE(::write(fds[1], "xy", 2) == 2);
  backend->submit(transfer(IoOpcode::read, fds[0], buffer, sizeof buffer), &late.completion, &later);
  aem_test::settle(*backend, [&] { return late.finals == 1; });
  CHECK(late.results == std::vector<int>{2});

  // A deadline in the past cancels only what has to wait.
  const __kernel_timespec past = after(-1s);
  backend->submit(transfer(IoOpcode::read, fds[0], buffer, sizeof buffer), &untimed.completion, &past);
  aem_test::settle_all(*backend);
  CHECK(untimed.results == std::vector<int>{-ECANCELED});
}

TEST_CASE_TEMPLATE("backend: cancel ends one operation: a multishot one with a final completion", K, BACKENDS) {
  auto backend = aem_test::make_backend<K>();
  if (!backend) return;
  aem_test::Pipe pipe(O_NONBLOCK);
  int* fds = pipe.fds;
  char buffer[8];
  Recorder read;
  Recorder kept;
  Recorder polls;
  backend->submit(transfer(IoOpcode::read, fds[0], buffer, sizeof buffer), &read.completion, nullptr);
  backend->submit(poll_request(IoOpcode::poll_multishot, fds[0], POLLIN), &polls.completion, nullptr);
  backend->submit(poll_request(IoOpcode::poll, fds[1], POLLOUT), &kept.completion, nullptr);
  backend->poll();
  backend->cancel(&read.completion);
  aem_test::settle(*backend, [&] { return read.finals == 1 && kept.finals == 1; });
  CHECK(read.results == std::vector<int>{-ECANCELED});
  CHECK(kept.results == std::vector<int>{POLLOUT});

  REQUIRE(::write(fds[1], "a", 1) == 1);
  aem_test::settle(*backend, [&] { return polls.more >= 1; });
  CHECK(polls.finals == 0);
  CHECK((polls.last() & POLLIN) != 0);
  backend->cancel(&polls.completion);
  aem_test::settle_all(*backend);
  CHECK(polls.finals == 1);
  CHECK(polls.last() == -ECANCELED);
}

TEST_CASE_TEMPLATE("backend: a read and a write wait on one socket at once", K, BACKENDS) {
  auto backend = aem_test::make_backend<K>();
  if (!backend) return;
  int sv[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
  int small = 4096;
  ::setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  std::vector<char> chunk(4096, 'f');
  std::size_t queued = 0;
  for (ssize_t n; (n = ::send(sv[0], chunk.data(), chunk.size(), MSG_DONTWAIT)) > 0;) queued += static_cast<std::size_t>(n);
  REQUIRE(queued > 0);

  char in[8];
  Recorder recv;
  Recorder send;
  backend->submit(transfer(IoOpcode::recv, sv[0], in, sizeof in), &recv.completion, nullptr);
  backend->submit(transfer(IoOpcode::send, sv[0], chunk.data(), 16), &send.completion, nullptr);
  backend->poll();
  CHECK(recv.calls() == 0);
  CHECK(send.calls() == 0);
  CHECK(backend->in_flight() == 2);

  REQUIRE(::send(sv[1], "ping", 4, 0) == 4);
  aem_test::settle(*backend, [&] { return recv.finals == 1; });
  CHECK(recv.results == std::vector<int>{4});
  CHECK(send.calls() == 0);

  std::vector<char> sink(queued + 16);
  std::size_t drained = 0;
  while (drained < queued) {
    const ssize_t n = ::recv(sv[1], sink.data(), sink.size(), 0);
    REQUIRE(n > 0);
    drained += static_cast<std::size_t>(n);
  }
  aem_test::settle_all(*backend);
  CHECK(send.results == std::vector<int>{16});
  ::close(sv[0]);
  ::close(sv[1]);
}

TEST_CASE_TEMPLATE("backend: multishot accept completes once per connection, on blocking and non-blocking listeners", K,
                   BACKENDS) {
  auto backend = aem_test::make_backend<K>();
  if (!backend) return;
  for (int type_flags : {0, static_cast<int>(SOCK_NONBLOCK)}) {
    CAPTURE(type_flags);
    Listener listener(type_flags);
    Recorder accepts;
    IoRequest request = poll_request(IoOpcode::accept_multishot, listener.fd, SOCK_CLOEXEC);
    backend->submit(request, &accepts.completion, nullptr);
    backend->poll();
    int clients[3];
    for (int& client : clients) client = listener.connect_client();
    aem_test::settle(*backend, [&] { return accepts.more == 3; });
    REQUIRE(accepts.more == 3);
    CHECK(accepts.finals == 0);
    for (int fd : accepts.results) {
      CHECK(fd >= 0);
      CHECK((::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
      ::close(fd);
    }
    backend->cancel(&accepts.completion);
    aem_test::settle_all(*backend);
    CHECK(accepts.finals == 1);
    CHECK(accepts.last() == -ECANCELED);
    for (int client : clients) ::close(client);
  }
}

TEST_CASE_TEMPLATE("backend: accept and connect, blocking sockets included", K, BACKENDS) {
  auto backend = aem_test::make_backend<K>();
  if (!backend) return;
  Listener listener;
  const int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in peer{};
  socklen_t peer_size = sizeof peer;
  Recorder accepted;
  Recorder connected;
  IoRequest accept = poll_request(IoOpcode::accept, listener.fd, SOCK_CLOEXEC);
  accept.address = reinterpret_cast<sockaddr*>(&peer);
  accept.address_length = &peer_size;
  IoRequest connect = poll_request(IoOpcode::connect, client, 0);
  connect.address = reinterpret_cast<sockaddr*>(&listener.address);
  connect.address_size = sizeof listener.address;
  backend->submit(accept, &accepted.completion, nullptr);
  backend->submit(connect, &connected.completion, nullptr);
  aem_test::settle_all(*backend);
  CHECK(connected.results == std::vector<int>{0});
  REQUIRE(accepted.results.size() == 1);
  CHECK(accepted.last() >= 0);
  CHECK(peer.sin_family == AF_INET);
  CHECK(peer_size == sizeof peer);
  CHECK((::fcntl(client, F_GETFL) & O_NONBLOCK) == 0);  // the socket's mode is left as it was
  ::close(accepted.last());
  ::close(client);

  // Nobody listens on the port of a closed listener.
  sockaddr_in gone{};
  {
    Listener closed;
    gone = closed.address;
  }
  const int refused_client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  Recorder refused;
  IoRequest refused_connect = poll_request(IoOpcode::connect, refused_client, 0);
  refused_connect.address = reinterpret_cast<sockaddr*>(&gone);
  refused_connect.address_size = sizeof gone;
  backend->submit(refused_connect, &refused.completion, nullptr);
  aem_test::settle_all(*backend);
  CHECK(refused.results == std::vector<int>{-ECONNREFUSED});
  ::close(refused_client);
}

TEST_CASE_TEMPLATE("backend: hang-ups and errors complete waiters with the call's result", K, BACKENDS) {
  auto backend = aem_test::make_backend<K>();
  if (!backend) return;
  std::signal(SIGPIPE, SIG_IGN);  // a write to a pipe without reader must report EPIPE
  aem_test::Pipe pipe;
  int* fds = pipe.fds;
  char buffer[8];
  Recorder read;
  Recorder poll;
  backend->submit(transfer(IoOpcode::read, fds[0], buffer, sizeof buffer), &read.completion, nullptr);
  backend->submit(poll_request(IoOpcode::poll, fds[0], POLLIN), &poll.completion, nullptr);
  backend->poll();
  pipe.close(1);
  aem_test::settle_all(*backend);
  CHECK(read.results == std::vector<int>{0});  // end of file
  CHECK((poll.last() & POLLHUP) != 0);

  int sv[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
  std::vector<char> chunk(65536, 'x');
  while (::send(sv[0], chunk.data(), chunk.size(), MSG_DONTWAIT) > 0) {
  }
  Recorder send;
  backend->submit(transfer(IoOpcode::send, sv[0], chunk.data(), chunk.size(), MSG_NOSIGNAL), &send.completion, nullptr);
  backend->poll();
  ::close(sv[1]);
  aem_test::settle_all(*backend);
  CHECK(send.results == std::vector<int>{-EPIPE});
  ::close(sv[0]);

  Recorder bad;
  backend->submit(transfer(IoOpcode::read, 1'000'000, buffer, sizeof buffer), &bad.completion, nullptr);
  aem_test::settle_all(*backend);
  CHECK(bad.results == std::vector<int>{-EBADF});
}

TEST_CASE_TEMPLATE("backend: regular files are read and written at offsets and at the file position", K, BACKENDS) {
  auto backend = aem_test::make_backend<K>();
  if (!backend) return;
  char path[] = "/tmp/aem_backend_XXXXXX";
  const int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  ::unlink(path);
  Recorder wrote;
  IoRequest write = transfer(IoOpcode::write, fd, const_cast<char*>("0123456789"), 10);
  write.offset = 0;
  backend->submit(write, &wrote.completion, nullptr);
  aem_test::settle_all(*backend);
  CHECK(wrote.results == std::vector<int>{10});

  char part[4] = {};
  Recorder at;
  IoRequest read_at = transfer(IoOpcode::read, fd, part, sizeof part);
  read_at.offset = 3;
  backend->submit(read_at, &at.completion, nullptr);
  aem_test::settle_all(*backend);
  CHECK(at.results == std::vector<int>{4});
  CHECK(std::memcmp(part, "3456", 4) == 0);

  // The file position (still 0: the write was positional) moves with each read.
  char a[3] = {}, b[3] = {};
  iovec vec[2] = {{a, 3}, {b, 3}};
  Recorder vector_read;
  backend->submit(transfer(IoOpcode::readv, fd, vec, 2), &vector_read.completion, nullptr);
  aem_test::settle_all(*backend);
  CHECK(vector_read.results == std::vector<int>{6});
  CHECK(std::memcmp(b, "345", 3) == 0);
  CHECK(::lseek(fd, 0, SEEK_CUR) == 6);
  ::close(fd);
}

TEST_CASE_TEMPLATE("backend: poll reports readiness: multishot poll reports each change", K, BACKENDS) {
  auto backend = aem_test::make_backend<K>();
  if (!backend) return;
  aem_test::Pipe pipe(O_NONBLOCK);
  int* fds = pipe.fds;
  Recorder once;
  Recorder changes;
  backend->submit(poll_request(IoOpcode::poll, fds[0], POLLIN), &once.completion, nullptr);
  backend->submit(poll_request(IoOpcode::poll_multishot, fds[0], POLLIN), &changes.completion, nullptr);
  backend->poll();
  CHECK(once.calls() == 0);
  char byte;
  for (int round = 1; round <= 3; ++round) {
    REQUIRE(::write(fds[1], "z", 1) == 1);
    aem_test::settle(*backend, [&] { return changes.more >= round; });
    CHECK(changes.more == round);
    REQUIRE(::read(fds[0], &byte, 1) == 1);
  }
  CHECK(once.results == std::vector<int>{POLLIN});
  CHECK(changes.finals == 0);
  backend->cancel(&changes.completion);
  aem_test::settle_all(*backend);
  CHECK(changes.finals == 1);
}

TEST_CASE_TEMPLATE("backend: MSG_WAITALL, vectors and messages move all their bytes", K, BACKENDS) {
  auto backend = aem_test::make_backend<K>();
  if (!backend) return;
  int sv[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);  // blocking sockets
  char all[6] = {};
  Recorder waitall;
  backend->submit(transfer(IoOpcode::recv, sv[0], all, sizeof all, MSG_WAITALL), &waitall.completion, nullptr);
  backend->poll();
  REQUIRE(::send(sv[1], "abc", 3, 0) == 3);
  backend->poll();
  REQUIRE(::send(sv[1], "def", 3, 0) == 3);
  aem_test::settle_all(*backend);
  CHECK(waitall.results == std::vector<int>{6});
  CHECK(std::memcmp(all, "abcdef", 6) == 0);

  char head[2] = {'h', 'i'};
  char tail[3] = {'!', '!', '!'};
  iovec out[2] = {{head, 2}, {tail, 3}};
  CHECK(complete_message(*backend, IoOpcode::sendmsg, sv[1], out, 2) == 5);
  char got[5] = {};
  iovec in[1] = {{got, 5}};
  CHECK(complete_message(*backend, IoOpcode::recvmsg, sv[0], in, 1) == 5);
  CHECK(std::memcmp(got, "hi!!!", 5) == 0);

  Recorder vector_write;
  backend->submit(transfer(IoOpcode::writev, sv[1], out, 2), &vector_write.completion, nullptr);
  aem_test::settle_all(*backend);
  CHECK(vector_write.results == std::vector<int>{5});
  ::close(sv[0]);
  ::close(sv[1]);
}

TEST_CASE_TEMPLATE("backend: multishot receive fills provided buffers in order: an empty ring ends it with -ENOBUFS", K,
                   BACKENDS) {
  auto backend = aem_test::make_backend<K>();
  if (!backend) return;
  aem::ArenaConfig arena_config;
  arena_config.capacity = 1 << 16;
  aem::BuddyArena arena(arena_config);
  auto ring = aem::detail::BufferRing::create(7, 4, 64, arena);
  REQUIRE(ring);
  REQUIRE(backend->register_buffer_ring(**ring) == 0);
  int sv[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
  IoRequest request;
  request.opcode = IoOpcode::recv_multishot;
  request.fd = sv[0];
  request.buffer_group = 7;
  aem_test::Recorder recv;
  backend->submit(request, &recv.completion, nullptr);
  std::string received;
  // Five sends into a ring of four buffers, with no buffer given back: four arrive, each in a
  // buffer of its own, then the receive ends with -ENOBUFS and the fifth waits in the socket.
  for (int i = 0; i < 5; ++i) {
    const std::string piece = "piece-" + std::to_string(i);
    REQUIRE(::send(sv[1], piece.data(), piece.size(), 0) == static_cast<ssize_t>(piece.size()));
    aem_test::settle(*backend, [&] { return recv.calls() > i || recv.finals > 0; });
  }
  aem_test::settle(*backend, [&] { return recv.finals > 0; });
  REQUIRE(recv.finals == 1);
  REQUIRE(recv.calls() == 5);
  CHECK(recv.results.back() == -ENOBUFS);
  std::set<std::uint16_t> ids;
  for (int i = 0; i < 4; ++i) {
    CHECK((recv.flags[i] & aem::detail::kCompletionMore) != 0);
    REQUIRE((recv.flags[i] & aem::detail::kCompletionBuffer) != 0);
    const auto id = static_cast<std::uint16_t>(recv.flags[i] >> aem::detail::kCompletionBufferShift);
    ids.insert(id);
    received += std::string(reinterpret_cast<const char*>((*ring)->buffer(id)), static_cast<std::size_t>(recv.results[i]));
    (*ring)->recycle(id);
  }
  CHECK(ids.size() == 4);
  CHECK(received == "piece-0piece-1piece-2piece-3");
  // Buffers are back: a new receive picks up what waited.
  aem_test::Recorder again;
  backend->submit(request, &again.completion, nullptr);
  aem_test::settle(*backend, [&] { return again.calls() > 0; });
  REQUIRE(again.calls() >= 1);
  REQUIRE(again.results[0] == 7);
  const auto id = static_cast<std::uint16_t>(again.flags[0] >> aem::detail::kCompletionBufferShift);
  CHECK(std::string(reinterpret_cast<const char*>((*ring)->buffer(id)), 7) == "piece-4");
  (*ring)->recycle(id);
  backend->cancel(&again.completion);
  aem_test::settle(*backend, [&] { return again.finals > 0; });
  CHECK(backend->in_flight() == 0);
  backend->unregister_buffer_ring(**ring);
  ::close(sv[0]);
  ::close(sv[1]);
}
