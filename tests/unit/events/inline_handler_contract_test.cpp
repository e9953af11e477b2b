// The inline-handler contract (executor.hpp): every call that would suspend is refused with
// errc::inline_handler_blocked — thrown by the calls that throw their errors, returned by the
// calls that return a Result — and each refusal is counted in EventInfo::blocked. The handler
// calls them where they could complete at once (a free mutex, a permit, a value waiting, data
// in a pipe): a suspending call is refused on the dispatcher whatever the state.
#include "support/cores.hpp"
#include "support/event_helpers.hpp"
#include "support/net_helpers.hpp"

#include <aem/capsule.hpp>
#include <aem/channel.hpp>
#include <aem/condvar.hpp>
#include <aem/cross_core.hpp>
#include <aem/event.hpp>
#include <aem/fd_io.hpp>
#include <aem/mutex.hpp>
#include <aem/net.hpp>
#include <aem/runtime.hpp>
#include <aem/semaphore.hpp>
#include <aem/wait_group.hpp>

#include <doctest/doctest.h>

#include <array>
#include <atomic>
#include <mutex>
#include <string>
#include <system_error>
#include <unistd.h>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using aem_test::wait_until;

namespace {

// Outcome is how one call ended in the handler: the code it threw, or the one it returned.
struct Outcome {
  std::string call;
  bool thrown = false;
  std::error_code code;
};

}  // namespace

TEST_CASE("events: an inline handler's suspending calls are refused: thrown or returned per the call, each counted") {
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([] {
    aem::Mutex mutex;  // free: lock() would not even wait
    aem::Mutex cv_mutex;
    aem::CondVar condvar;
    aem::Semaphore semaphore(1);  // a permit is available
    aem::WaitGroup group;         // count zero
    aem::Channel<int> channel(4);
    REQUIRE(channel.try_send(7));  // a value waits, and there is room
    int pipe_fds[2];
    REQUIRE(::pipe(pipe_fds) == 0);
    REQUIRE(::write(pipe_fds[1], "x", 1) == 1);  // data waits in the pipe
    aem::TcpListener listener = aem_test::loopback_listener();
    const aem::SocketAddress address = listener.local_address().value();
    auto client = aem::TcpStream::connect(address, 10s);
    REQUIRE(client);
    auto server = listener.accept(10s);
    REQUIRE(server);
    REQUIRE(server->send(aem_test::data_of("queued")));  // the stream has a send queue to flush
    auto udp = aem::UdpSocket::bind(aem::SocketAddress::ipv4_loopback(0));
    REQUIRE(udp);
    auto child = aem::spawn([] { return 1; });
    REQUIRE(child);

    std::vector<Outcome> outcomes;
    std::atomic<bool> ran{false};
    auto thrown = [&](const char* call, auto&& fn) {
      Outcome o{call, true, {}};
      try {
        fn();
      } catch (const std::system_error& e) {
        o.code = e.code();
      }
      outcomes.push_back(o);
    };
    auto returned = [&](const char* call, auto&& result) {
      outcomes.push_back({call, false, result ? std::error_code() : result.error()});
    };
    auto id = aem::on_event(
        [&] {
          std::array<std::byte, 8> buffer{};
          // Calls that throw their errors.
          thrown("this_capsule::sleep_for", [] { aem::this_capsule::sleep_for(1ms); });
          thrown("Mutex::lock()", [&] { mutex.lock(); });
          thrown("Semaphore::acquire()", [&] { semaphore.acquire(); });
          thrown("WaitGroup::wait()", [&] { group.wait(); });
          thrown("CondVar::wait(lock)", [&] {
            std::unique_lock lock(cv_mutex, std::try_to_lock);
            REQUIRE(lock.owns_lock());
            condvar.wait(lock);
          });
          thrown("Capsule::join", [&] { (void)child->join(); });
          thrown("CondVar::wait(lock, deadline, pred)", [&] {
            std::unique_lock lock(cv_mutex, std::try_to_lock);
            REQUIRE(lock.owns_lock());
            (void)condvar.wait(lock, 1s, [] { return false; });
          });
          // Calls that return their errors.
          returned("Mutex::lock(deadline)", mutex.lock(1s));
          returned("Semaphore::acquire(deadline)", semaphore.acquire(1s));
          returned("WaitGroup::wait(deadline)", group.wait(1s));
          {
            std::unique_lock lock(cv_mutex, std::try_to_lock);
            REQUIRE(lock.owns_lock());
            returned("CondVar::wait(lock, deadline)", condvar.wait(lock, 1s));
            CHECK(lock.owns_lock());  // refused before touching the lock
          }
          returned("Channel::send", channel.send(8, 1s));
          returned("Channel::receive", channel.receive(1s));
          returned("submit", aem::submit(0, [] { return 1; }));
          returned("aem::read", aem::read(pipe_fds[0], buffer, 1s));
          returned("TcpListener::accept", listener.accept(1s));
          returned("TcpStream::connect", aem::TcpStream::connect(address, 1s));
          returned("TcpStream::read", server->read(buffer, 1s));
          returned("TcpStream::write", server->write(std::string_view("x"), 1s));
          returned("TcpStream::flush", server->flush(1s));
          returned("UdpSocket::recv_from", udp->recv_from(buffer, 1s));
          aem::this_capsule::yield();  // returns at once; counted
          ran = true;
        },
        {.exec = aem::Executor::inline_handler});
    REQUIRE(id);
    REQUIRE(aem::trigger(*id));
    REQUIRE(wait_until([&] { return ran.load(); }));

    std::size_t refused = 0;
    for (const Outcome& o : outcomes) {
      CAPTURE(o.call);
      CHECK(o.code == aem::errc::inline_handler_blocked);
      if (o.code == aem::errc::inline_handler_blocked) ++refused;
    }
    CHECK(outcomes.size() == 21);
    auto info = aem::ctl(*id).info();
    REQUIRE(info);
    CHECK(info->blocked == refused + 1);  // and the yield
    CHECK(aem::this_core::event_stats().inline_blocked == refused + 1);

    // Nothing was taken by the refused calls.
    CHECK(mutex.try_lock());
    mutex.unlock();
    CHECK(semaphore.count() == 1);
    CHECK(channel.try_receive().value() == 7);
    std::array<std::byte, 1> byte{};
    CHECK(aem::read(pipe_fds[0], byte, 10s).value() == 1);
    CHECK(child->join() == 1);
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
  });
}
