// handover_test.cpp — aem::Handover: listening sockets handed to a successor by name, the
// accept queue kept, and the failure paths — a successor or a predecessor that goes away, two
// successors at once, strangers (bytes of another protocol, another user). Both sides run in
// this process (one runtime); a side that must misbehave speaks the wire protocol by hand.
#include "runtime/upgrade/handover_channel.hpp"
#include "support/net_helpers.hpp"

#include <aem/capsule.hpp>
#include <aem/handover.hpp>
#include <aem/net.hpp>
#include <aem/runtime.hpp>
#include <aem/wait_group.hpp>

#include <doctest/doctest.h>

#include <csignal>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <utility>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

// Place is a fresh directory for the hand-over socket, removed afterwards.
struct Place {
  Place() {
    char name[] = "/tmp/aem_handover_XXXXXX";
    REQUIRE(::mkdtemp(name) != nullptr);
    dir = name;
    ::chmod(name, 0755);  // another user must reach the socket file in it
  }
  ~Place() { std::filesystem::remove_all(dir); }
  std::string path(const std::string& file = "handover.sock") const { return dir + "/" + file; }
  std::string dir;
};

// Log collects the lines a Handover logs (any thread).
struct Log {
  std::function<void(std::string_view)> sink() {
    return [this](std::string_view line) {
      std::lock_guard guard(lock);
      lines.emplace_back(line);
    };
  }
  bool has(std::string_view text) const {
    std::lock_guard guard(lock);
    for (const std::string& line : lines) {
      if (line.find(text) != std::string::npos) return true;
    }
    return false;
  }
  // wait_for waits (in a capsule) until a line holds `text`; false after the hang guard.
  bool wait_for(std::string_view text) const {
    for (int i = 0; i < 2000; ++i) {
      if (has(text)) return true;
      aem::this_capsule::sleep_for(5ms);
    }
    return false;
  }
  mutable std::mutex lock;
  std::vector<std::string> lines;
};

aem::HandoverOptions options_at(const Place& place, Log& log) {
  aem::HandoverOptions options;
  options.path = place.path();
  options.log = log.sink();
  return options;
}

aem::HandoverOptions path_only(const std::string& path) {
  aem::HandoverOptions options;
  options.path = path;
  return options;
}

ino_t inode_of(int fd) {
  struct stat file {};
  REQUIRE(::fstat(fd, &file) == 0);
  return file.st_ino;
}

// connect_raw opens a hand-over connection that the test drives by hand.
aem::detail::HandoverChannel connect_raw(const Place& place) {
  auto stream = aem::UnixStream::connect(*aem::SocketAddress::unix_path(place.path()), 10s);
  REQUIRE(stream);
  return aem::detail::HandoverChannel(std::move(*stream));
}

// hello_for_offer says hello on a raw connection, as a successor, and returns the answer, which
// must be an offer.
aem::detail::Frame hello_for_offer(aem::detail::HandoverChannel& successor) {
  REQUIRE(successor.send(aem::detail::FrameType::hello, {}, {}, 10s));
  auto offer = successor.receive(10s);
  REQUIRE(offer);
  REQUIRE(offer->type == aem::detail::FrameType::offer);
  return std::move(*offer);
}

// claim_refused claims the listeners with `options` (whose log is `new_log`) and checks that the
// claim is refused with `code` and that the log says `said`.
void claim_refused(const aem::HandoverOptions& options, const Log& new_log, aem::handover_errc code, const char* said) {
  auto refused = aem::Handover::claim(options);
  REQUIRE_FALSE(refused);
  CHECK(refused.error() == code);
  CHECK(new_log.has(said));
}

// offering is a running process's side: it offers a TCP listener named "web" (returned).
std::pair<aem::Handover, aem::TcpListener> offering(const aem::HandoverOptions& options) {
  auto side = aem::Handover::claim(options);
  REQUIRE(side);
  auto web = side->tcp_listener("web", aem::SocketAddress::ipv4_loopback(0));
  REQUIRE(web);
  REQUIRE(side->ready());
  return {std::move(*side), std::move(*web)};
}

template <typename F>
void run(F&& body) {
  aem::Runtime rt(aem::Config{.cores = 2});
  rt.run(std::forward<F>(body));
}

// run_offering runs `body(old_side)` in a runtime where an old process offers "web" at `place`,
// logging to `log`.
template <typename F>
void run_offering(const Place& place, Log& log, F&& body) {
  run([&] {
    auto [old_handover, old_web] = offering(options_at(place, log));
    body(&old_handover);
  });
}

}  // namespace

TEST_CASE("handover: a first start binds fresh listeners and offers them on the path, a stale file too") {
  Place place;
  {  // a socket file nobody listens on any more: a process that died
    auto stale = aem::UnixListener::bind(*aem::SocketAddress::unix_path(place.path()));
    REQUIRE(stale);
  }
  REQUIRE(std::filesystem::exists(place.path()));
  Log log;
  run([&] {
    auto handover = aem::Handover::claim(options_at(place, log));
    REQUIRE(handover);
    CHECK_FALSE(handover->inherited());
    auto listener = handover->tcp_listener("web", aem::SocketAddress::ipv4_loopback(0));
    REQUIRE(listener);
    CHECK(handover->tcp_listener("web", aem::SocketAddress::ipv4_loopback(0)).error() ==
          aem::handover_errc::duplicate_name);
    REQUIRE(handover->ready());
    CHECK(handover->ready().error() == aem::errc::invalid_argument);
    struct stat file {};
    REQUIRE(::stat(place.path().c_str(), &file) == 0);
    CHECK(S_ISSOCK(file.st_mode));
    CHECK((file.st_mode & 0777) == 0600);  // this user only
    handover->close();
    CHECK_FALSE(std::filesystem::exists(place.path()));  // closed without a successor: removed
  });
  CHECK(aem::Handover::claim(path_only("")).error() == aem::handover_errc::not_a_file_path);
  CHECK(aem::Handover::claim(path_only("@abstract")).error() == aem::handover_errc::not_a_file_path);
}

TEST_CASE("handover: the successor receives the same sockets by name and accepts what was queued") {
  Place place;
  Log old_log;
  Log new_log;
  run([&] {
    aem::WaitGroup handed(1);
    aem::HandoverPeer successor;
    auto options = options_at(place, old_log);
    options.on_handed_over = [&](const aem::HandoverPeer& peer) {
      successor = peer;
      handed.done();
    };
    auto old_side = aem::Handover::claim(options);
    REQUIRE(old_side);
    auto web = old_side->tcp_listener("web", aem::SocketAddress::ipv4_loopback(0));
    REQUIRE(web);
    auto admin = old_side->unix_listener("admin", *aem::SocketAddress::unix_path(place.path("admin.sock")));
    REQUIRE(admin);
    REQUIRE(old_side->ready());
    const auto port = web->local_address()->port();
    const ino_t web_inode = inode_of(web->fd());

    // Connections waiting in the accept queue during the hand-over belong to the socket.
    std::vector<aem::TcpStream> clients;
    for (int i = 0; i < 5; ++i) {
      auto client = aem::TcpStream::connect(aem::SocketAddress::ipv4_loopback(port), 10s);
      REQUIRE(client);
      clients.push_back(std::move(*client));
    }

    auto new_options = options_at(place, new_log);
    auto new_side = aem::Handover::claim(new_options);
    REQUIRE(new_side);
    CHECK(new_side->inherited());
    CHECK(new_side->predecessor().pid == ::getpid());
    CHECK(new_side->inherited_names().size() == 2);
    auto taken = new_side->tcp_listener("web", aem::SocketAddress::ipv4_loopback(0));
    REQUIRE(taken);
    CHECK(taken->local_address()->port() == port);
    CHECK(inode_of(taken->fd()) == web_inode);  // the very socket, not a new one on the port
    auto taken_admin = new_side->unix_listener("admin", *aem::SocketAddress::unix_path(place.path("admin.sock")));
    REQUIRE(taken_admin);
    CHECK(inode_of(taken_admin->fd()) == inode_of(admin->fd()));
    CHECK_FALSE(old_side->handed_over());
    REQUIRE(new_side->ready());
    REQUIRE(handed.wait(10s));
    CHECK(old_side->handed_over());
    CHECK(successor.pid == ::getpid());
    CHECK(new_log.has("stops accepting"));

    // The old process closes its listeners and goes: the queue stays with the successor.
    REQUIRE(web->close());
    REQUIRE(admin->close());
    old_side = aem::Handover::claim(path_only(place.dir + "/unused.sock"));  // drops the old state
    for (int i = 0; i < 5; ++i) {
      auto accepted = taken->accept(10s);
      REQUIRE(accepted);
    }
    // The successor offers next: a third process gets the sockets from it.
    Log third_log;
    auto third = aem::Handover::claim(options_at(place, third_log));
    REQUIRE(third);
    CHECK(third->inherited_names().size() == 2);
  });
}

TEST_CASE("handover: a successor that goes away before it accepts leaves the old process serving") {
  Place place;
  Log log;
  run([&] {
    aem::WaitGroup handed(1);
    auto options = options_at(place, log);
    options.on_handed_over = [&](const aem::HandoverPeer&) { handed.done(); };
    auto [old_handover, old_web] = offering(options);
    auto* old_side = &old_handover;
    auto* web = &old_web;
    {
      auto successor = connect_raw(place);
      const aem::detail::Frame offer = hello_for_offer(successor);
      CHECK(offer.fds.fds.size() == 1);
    }  // it dies before it says it accepts
    CHECK(log.wait_for("did not start accepting"));
    CHECK(log.has("still serving"));
    CHECK_FALSE(old_side->handed_over());
    // The old process still accepts, and the next successor gets the listeners.
    auto client = aem::TcpStream::connect(aem::SocketAddress::ipv4_loopback(web->local_address()->port()), 10s);
    REQUIRE(client);
    REQUIRE(web->accept(10s));
    Log new_log;
    auto next = aem::Handover::claim(options_at(place, new_log));
    REQUIRE(next);
    REQUIRE(next->tcp_listener("web", aem::SocketAddress::ipv4_loopback(0)));
    REQUIRE(next->ready());
    REQUIRE(handed.wait(10s));
    CHECK(old_side->handed_over());
  });
}

TEST_CASE("handover: the successor keeps serving when the old process goes away during the hand-over") {
  Place place;
  Log log;
  run([&] {
    // A predecessor that hands its listener over and dies before it confirms the drain.
    auto fake = aem::UnixListener::bind(*aem::SocketAddress::unix_path(place.path()));
    REQUIRE(fake);
    auto port_listener = aem::TcpListener::bind(aem::SocketAddress::ipv4_loopback(0));
    REQUIRE(port_listener);
    const auto port = port_listener->local_address()->port();
    auto predecessor = aem::spawn([&] {
      auto connection = fake->accept(10s);
      REQUIRE(connection);
      aem::detail::HandoverChannel channel(std::move(*connection));
      auto hello = channel.receive(10s);
      REQUIRE(hello);
      const aem::detail::NamedListener offered[] = {{"web", port_listener->fd()}};
      const int fds[] = {port_listener->fd()};
      REQUIRE(channel.send(aem::detail::FrameType::offer, aem::detail::encode_offer(offered), fds, 10s));
      auto ready = channel.receive(10s);
      REQUIRE(ready);
      CHECK(ready->type == aem::detail::FrameType::ready);
      (void)port_listener->close();  // it dies: its references go
      (void)fake->close();
    });
    REQUIRE(predecessor);
    auto successor = aem::Handover::claim(options_at(place, log));
    REQUIRE(successor);
    auto web = successor->tcp_listener("web", aem::SocketAddress::ipv4_loopback(port));
    REQUIRE(web);
    REQUIRE(successor->ready());  // not an error: the listeners are ours
    predecessor->join();
    CHECK(log.has("did not confirm"));
    auto client = aem::TcpStream::connect(aem::SocketAddress::ipv4_loopback(port), 10s);
    REQUIRE(client);
    CHECK(web->accept(10s));
    // It offers in turn: its file replaced the dead one.
    Log next_log;
    auto next = aem::Handover::claim(options_at(place, next_log));
    REQUIRE(next);
    CHECK(next->inherited());
  });
}

TEST_CASE("handover: of two successors at once one gets the listeners, the other is refused") {
  Place place;
  Log log;
  run_offering(place, log, [&](aem::Handover* old_side) {
    auto first = connect_raw(place);
    [[maybe_unused]] const aem::detail::Frame offer = hello_for_offer(first);  // held, as a successor would
    Log second_log;
    claim_refused(options_at(place, second_log), second_log, aem::handover_errc::busy, "another successor");
    CHECK(log.has("another successor is taking the listeners"));
    REQUIRE(first.send(aem::detail::FrameType::ready, {}, {}, 10s));
    auto done = first.receive(10s);
    REQUIRE(done);
    CHECK(done->type == aem::detail::FrameType::done);
    CHECK(old_side->handed_over());
    // Until the winner offers in its turn, the old process says it is done.
    auto late = aem::Handover::claim(options_at(place, second_log));
    REQUIRE_FALSE(late);
    CHECK(late.error() == aem::handover_errc::superseded);
  });
}

TEST_CASE("handover: a process that speaks another protocol is refused and logged") {
  Place place;
  Log log;
  run_offering(place, log, [&](aem::Handover* old_side) {
    auto stranger = connect_raw(place);
    REQUIRE(stranger.write_all(aem_test::as_bytes("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 10s));
    auto answer = stranger.receive(10s);
    REQUIRE(answer);
    REQUIRE(answer->type == aem::detail::FrameType::refused);
    CHECK(aem::detail::decode_refusal(answer->payload).code == aem::handover_errc::bad_protocol);
    CHECK(answer->fds.fds.empty());
    CHECK(log.wait_for("does not speak the hand-over protocol"));
    CHECK_FALSE(old_side->handed_over());
    // A wrong version is refused by name.
    auto future = connect_raw(place);
    char head[12] = {'A', 'E', 'M', 'H', 9, 0, 1, 0, 0, 0, 0, 0};
    REQUIRE(future.write_all(std::as_bytes(std::span(head)), 10s));
    auto refused = future.receive(10s);
    REQUIRE(refused);
    CHECK(aem::detail::decode_refusal(refused->payload).code == aem::handover_errc::version_mismatch);
    CHECK(log.wait_for("version 9"));
  });
}

TEST_CASE("handover: a process of a user that is not allowed is refused on both sides") {
  Place place;
  Log log;
  const std::uint32_t own = ::geteuid();
  run([&] {
    auto options = options_at(place, log);
    options.allowed_uids = {own + 4242};  // not us: our own successor is a stranger here
    auto [old_handover, old_web] = offering(options);
    auto* old_side = &old_handover;
    Log new_log;
    claim_refused(options_at(place, new_log), new_log, aem::handover_errc::not_allowed,
                  "refused to hand its listeners over");
    CHECK(log.wait_for("its user is not allowed"));
    CHECK_FALSE(old_side->handed_over());
  });
  // The other way round: the successor does not take listeners from a user it does not allow.
  Place second;
  Log old_log;
  run([&] {
    auto old_side = aem::Handover::claim(options_at(second, old_log));
    REQUIRE(old_side);
    REQUIRE(old_side->ready());
    Log new_log;
    auto options = options_at(second, new_log);
    options.allowed_uids = {own + 4242};
    claim_refused(options, new_log, aem::handover_errc::not_allowed, "may not hand listeners");
    CHECK(old_log.wait_for("may not hand listeners"));
  });
}

TEST_CASE("handover: a process of another user (setuid nobody) is refused and logged") {
  if (::geteuid() != 0) {
    MESSAGE("not root: cannot start a process of another user; skipped");
    return;
  }
  Place place;
  Log log;
  // The stranger is forked before the runtime starts (no threads yet), and waits for a byte.
  int go[2];
  int result[2];
  REQUIRE(::pipe(go) == 0);
  REQUIRE(::pipe(result) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    char byte = 0;
    if (::read(go[0], &byte, 1) != 1 || ::setgid(65534) != 0 || ::setuid(65534) != 0) std::_Exit(2);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    const std::string path = place.path();
    std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) std::_Exit(3);
    char reply[512];
    std::size_t have = 0;
    for (ssize_t n; (n = ::read(fd, reply + have, sizeof reply - have)) > 0;) have += static_cast<std::size_t>(n);
    std::uint32_t code = 0;
    if (have < 16) std::_Exit(4);
    std::memcpy(&code, reply + 12, 4);
    (void)::write(result[1], &code, sizeof code);
    std::_Exit(0);
  }
  ::close(go[0]);
  ::close(result[1]);
  run([&] {
    auto options = options_at(place, log);
    options.allowed_uids = {::geteuid(), 4242};  // a list: the file is open to all, credentials decide
    auto [old_handover, old_web] = offering(options);
    auto* old_side = &old_handover;
    REQUIRE(::write(go[1], "g", 1) == 1);
    CHECK(log.wait_for("(uid 65534)"));
    CHECK(log.has("its user is not allowed"));
    CHECK_FALSE(old_side->handed_over());
  });
  std::uint32_t code = 0;
  CHECK(::read(result[0], &code, sizeof code) == sizeof code);
  CHECK(code == static_cast<std::uint32_t>(aem::handover_errc::not_allowed));
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  ::close(go[1]);
  ::close(result[0]);
}

TEST_CASE("handover: with an offer signal the listeners are offered only once the signal arrives") {
  Place place;
  Log log;
  sigset_t usr2;
  sigemptyset(&usr2);
  sigaddset(&usr2, SIGUSR2);
  sigset_t previous;
  REQUIRE(::pthread_sigmask(SIG_BLOCK, &usr2, &previous) == 0);  // before the cores start
  run([&] {
    auto options = options_at(place, log);
    options.offer_signal = SIGUSR2;
    auto [old_handover, old_web] = offering(options);
    CHECK(log.has("once signal"));
    CHECK_FALSE(std::filesystem::exists(place.path()));  // not offered yet
    Log early_log;
    auto early = aem::Handover::claim(options_at(place, early_log));
    REQUIRE(early);
    CHECK_FALSE(early->inherited());  // nobody offers: it would start first
    REQUIRE(::kill(::getpid(), SIGUSR2) == 0);
    CHECK(log.wait_for("offering 1 listeners"));
    Log next_log;
    auto next = aem::Handover::claim(options_at(place, next_log));
    REQUIRE(next);
    CHECK(next->inherited());
  });
  REQUIRE(::pthread_sigmask(SIG_SETMASK, &previous, nullptr) == 0);
}
