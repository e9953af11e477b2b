// handover_test.cpp — upgrades without downtime (aem::Handover through the example servers'
// --handover PATH): while clients keep 50 keep-alive connections busy and open new ones all
// the time, the server is replaced 5 times in a row by starting a new process with the same
// path. No connection may be refused and no request may fail; every answer comes from one of
// the processes (counted per process), and every old process exits 0 within its drain
// deadline. The HTTP server alternates its serving styles across generations; the echo server
// runs in registration style. A request on a kept-alive connection that the server closed
// before answering it (an idle connection ended by the drain) is sent again on a new
// connection, as HTTP clients do; such retries are counted and printed, and a request that
// fails again, or a new connection closed before its first answer, is a failure.
// How long each hand-over took is printed, never asserted (a shared machine).
#include <doctest/doctest.h>

#if defined(AEM_HTTP_SERVER_PATH) && defined(AEM_ECHO_SERVER_PATH)

#include "support/child_process.hpp"
#include "support/loopback_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr int kBusyConnections = 50;
constexpr int kReplacements = 5;
constexpr int kDrainSeconds = 10;  // each server's drain deadline (--shutdown-timeout, --drain-ms)

// HandoverPath is a fresh directory for the hand-over socket.
struct HandoverPath {
  HandoverPath() {
    char name[] = "/tmp/aem_handover_it_XXXXXX";
    REQUIRE(::mkdtemp(name) != nullptr);
    dir = name;
  }
  ~HandoverPath() { std::filesystem::remove_all(dir); }
  std::string path() const { return dir + "/handover.sock"; }
  std::string dir;
};

// Tally counts what the clients saw.
struct Tally {
  std::atomic<std::uint64_t> connections{0};  // connects that succeeded
  std::atomic<std::uint64_t> refused{0};      // connects that failed
  std::atomic<std::uint64_t> answered{0};
  std::atomic<std::uint64_t> retried{0};      // resent after an idle close
  std::atomic<std::uint64_t> failed{0};
  std::mutex lock;
  std::map<long, std::uint64_t> by_process;  // HTTP: answers per server pid
  std::vector<std::string> failures;         // the first few, for the report

  void fail(const std::string& what) {
    failed.fetch_add(1);
    std::lock_guard guard(lock);
    if (failures.size() < 5) failures.push_back(what);
  }
  void answer_from(long pid) {
    answered.fetch_add(1);
    std::lock_guard guard(lock);
    ++by_process[pid];
  }
};

// Connection is a blocking client socket with hang guards.
class Connection {
 public:
  ~Connection() { reset(); }
  bool open() const { return fd_ >= 0; }
  bool reused() const { return answers_ > 0; }
  bool connect(int port) {
    reset();
    fd_ = aem_test::guarded_tcp_socket(20);
    if (fd_ < 0) return false;
    if (!aem_test::connect_loopback(fd_, port)) {
      reset();
      return false;
    }
    return true;
  }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    answers_ = 0;
    buffer_.clear();
  }
  bool send(std::string_view data) { return aem_test::send_all(fd_, data); }
  // fill reads more bytes; false at the end of the stream or an error.
  bool fill() {
    char chunk[4096];
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }
  std::string& buffer() { return buffer_; }
  void answered() { ++answers_; }

 private:
  int fd_ = -1;
  int answers_ = 0;
  std::string buffer_;
};

// Outcome of one request.
enum class Outcome { answered, closed_unanswered, broken };

// ---- HTTP ------------------------------------------------------------------------------------

constexpr std::string_view kHttpRequest = "GET /hello HTTP/1.1\r\nHost: test\r\n\r\n";

// http_exchange sends one request and reads its response: the pid in its Server field
// ("aem (pid N)") and whether the server closes after it.
Outcome http_exchange(Connection& c, long& pid, bool& closes) {
  const bool sent = c.send(kHttpRequest);
  std::size_t end;
  while ((end = c.buffer().find("\r\n\r\n")) == std::string::npos) {
    if (!c.fill()) return c.buffer().empty() ? Outcome::closed_unanswered : Outcome::broken;
  }
  if (!sent) return Outcome::broken;
  const std::string head = c.buffer().substr(0, end + 4);
  if (!head.starts_with("HTTP/1.1 200 ")) return Outcome::broken;
  const std::size_t server = head.find("Server: aem (pid ");
  const std::size_t length_at = head.find("Content-Length: ");
  if (server == std::string::npos || length_at == std::string::npos) return Outcome::broken;
  pid = std::atol(head.c_str() + server + 17);
  const std::size_t length = std::strtoul(head.c_str() + length_at + 16, nullptr, 10);
  closes = head.find("Connection: close") != std::string::npos;
  while (c.buffer().size() < end + 4 + length) {
    if (!c.fill()) return Outcome::broken;
  }
  if (c.buffer().substr(end + 4, length) != "Hello, World!\n") return Outcome::broken;
  c.buffer().erase(0, end + 4 + length);
  c.answered();
  return Outcome::answered;
}

// ---- echo ------------------------------------------------------------------------------------

// echo_exchange sends one message and reads it back.
Outcome echo_exchange(Connection& c, std::uint64_t sequence) {
  char message[32];
  std::snprintf(message, sizeof message, "message %020llu\n", static_cast<unsigned long long>(sequence));
  const std::string_view text(message, 29);
  const bool sent = c.send(text);
  while (c.buffer().size() < text.size()) {
    if (!c.fill()) return c.buffer().empty() ? Outcome::closed_unanswered : Outcome::broken;
  }
  if (!sent || c.buffer().substr(0, text.size()) != text) return Outcome::broken;
  c.buffer().erase(0, text.size());
  c.answered();
  return Outcome::answered;
}

// Protocol is what the clients speak: one request and its answer.
using Exchange = Outcome (*)(Connection&, Tally&, std::uint64_t);

Outcome http_request(Connection& c, Tally& tally, std::uint64_t) {
  long pid = 0;
  bool closes = false;
  const Outcome outcome = http_exchange(c, pid, closes);
  if (outcome == Outcome::answered) {
    tally.answer_from(pid);
    if (closes) c.reset();
  }
  return outcome;
}

Outcome echo_request(Connection& c, Tally& tally, std::uint64_t sequence) {
  const Outcome outcome = echo_exchange(c, sequence);
  if (outcome == Outcome::answered) tally.answered.fetch_add(1);
  return outcome;
}

// request sends one request on `c` (connecting first if needed); a kept-alive connection that
// the server closed before answering gets the request again on a new connection.
void request(Connection& c, int port, Tally& tally, Exchange exchange, std::uint64_t sequence) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!c.open()) {
      if (!c.connect(port)) {
        tally.refused.fetch_add(1);
        return;
      }
      tally.connections.fetch_add(1);
    }
    const bool reused = c.reused();
    const Outcome outcome = exchange(c, tally, sequence);
    if (outcome == Outcome::answered) return;
    c.reset();
    if (outcome == Outcome::closed_unanswered && reused && attempt == 0) {
      tally.retried.fetch_add(1);
      continue;
    }
    tally.fail(outcome == Outcome::broken ? "a broken answer" : "a new connection closed unanswered");
    return;
  }
}

// Load is the clients: busy keep-alive connections, and one that opens a new connection for
// every request.
class Load {
 public:
  Load(int port, Tally& tally, Exchange exchange) {
    for (int i = 0; i < kBusyConnections; ++i) {
      threads_.emplace_back([this, port, &tally, exchange, i] {
        Connection c;
        for (std::uint64_t n = static_cast<std::uint64_t>(i) << 32; !stop_.load(); ++n) {
          request(c, port, tally, exchange, n);
        }
      });
    }
    threads_.emplace_back([this, port, &tally, exchange] {
      for (std::uint64_t n = 1ull << 62; !stop_.load(); ++n) {
        Connection c;
        request(c, port, tally, exchange, n);
        new_connections_.fetch_add(1);
      }
    });
  }
  ~Load() { stop(); }
  void stop() {
    stop_.store(true);
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  std::uint64_t new_connections() const { return new_connections_.load(); }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> new_connections_{0};
  std::vector<std::thread> threads_;
};

double median_ms(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values.empty() ? 0 : values[values.size() / 2];
}

// Replacement is how one hand-over went.
struct Replacement {
  double taken_over_ms = 0;  // the successor's start to its listening (it holds the sockets)
  double drained_ms = 0;     // the successor's start to the old process's exit
};

// replace_repeatedly runs generation 0, puts the load on it, replaces it kReplacements times,
// stops the last one, and returns the servers' pids and the stdout each printed after its
// "listening" line.
struct Run {
  std::vector<long> pids;
  std::vector<std::string> outputs;
  std::vector<Replacement> replacements;
  std::uint64_t new_connections = 0;
};

// ArgsOf gives the command line of a generation, which hands over through `handover_path`.
using ArgsOf = std::function<std::vector<std::string>(int generation, const std::string& handover_path)>;

Run replace_repeatedly(const std::string& program, const ArgsOf& args_of, Tally& tally, Exchange exchange) {
  const HandoverPath place;
  Run run;
  const auto guard = std::chrono::seconds(kDrainSeconds + 30);
  auto current = std::make_unique<aem_test::ServerProcess>(program, args_of(0, place.path()), 0, guard);
  const int port = current->port();
  run.pids.push_back(current->pid());
  Load load(port, tally, exchange);
  std::this_thread::sleep_for(300ms);
  for (int generation = 1; generation <= kReplacements; ++generation) {
    const auto start = Clock::now();
    auto next = std::make_unique<aem_test::ServerProcess>(program, args_of(generation, place.path()), 0, guard);
    const auto listening = Clock::now();
    CHECK(next->port() == port);  // the same socket, not another port
    run.pids.push_back(next->pid());
    // The old process exits by itself, 0, within its drain deadline (the guard is a hang guard
    // well past it).
    CHECK(current->wait_exit() == 0);
    const auto exited = Clock::now();
    run.outputs.push_back(current->rest_of_output());
    run.replacements.push_back({std::chrono::duration<double, std::milli>(listening - start).count(),
                                std::chrono::duration<double, std::milli>(exited - start).count()});
    CHECK(exited - start < std::chrono::seconds(kDrainSeconds) + 5s);
    current = std::move(next);
    std::this_thread::sleep_for(300ms);  // the new one serves alone for a while
  }
  load.stop();
  run.new_connections = load.new_connections();
  current->signal(SIGTERM);
  CHECK(current->wait_exit() == 0);
  run.outputs.push_back(current->rest_of_output());
  return run;
}

std::string report(const char* what, const Run& run, const Tally& tally) {
  std::vector<double> taken;
  std::vector<double> drained;
  for (const Replacement& r : run.replacements) {
    taken.push_back(r.taken_over_ms);
    drained.push_back(r.drained_ms);
  }
  std::ostringstream out;
  out << what << ": " << run.replacements.size() << " replacements; " << tally.connections.load() << " connections ("
      << run.new_connections << " one-request), " << tally.answered.load() << " requests answered, "
      << tally.refused.load() << " refused connections, " << tally.failed.load() << " failed requests, "
      << tally.retried.load() << " resent after an idle keep-alive close; hand-over (start of the new process to "
      << "its listening): median " << median_ms(taken) << " ms, max "
      << (taken.empty() ? 0 : *std::max_element(taken.begin(), taken.end())) << " ms; old process gone after: median "
      << median_ms(drained) << " ms, max " << (drained.empty() ? 0 : *std::max_element(drained.begin(), drained.end()))
      << " ms";
  return out.str();
}

// replace_under_load runs replace_repeatedly, prints the report and its first failures, and
// checks what every server owes its clients: no connection refused, no request failed, some
// answered.
Run replace_under_load(const char* what, const std::string& program, const ArgsOf& args_of, Tally& tally,
                       Exchange exchange) {
  Run run = replace_repeatedly(program, args_of, tally, exchange);
  MESSAGE(report(what, run, tally));
  for (const std::string& failure : tally.failures) MESSAGE("failure: " << failure);
  CHECK(tally.refused.load() == 0);
  CHECK(tally.failed.load() == 0);
  CHECK(tally.answered.load() > 0);
  return run;
}

}  // namespace

TEST_CASE("handover: the HTTP server is replaced 5 times under load: no connection refused, no request failed") {
  Tally tally;
  const Run run = replace_under_load(
      "http_server", AEM_HTTP_SERVER_PATH,
      [](int g, const std::string& path) {
        return std::vector<std::string>{"--port", "0", "--cores", "2", "--style", g % 2 == 0 ? "capsule" : "registration",
                                        "--shutdown-timeout", std::to_string(kDrainSeconds) + "s", "--handover", path};
      },
      tally, &http_request);
  // Every answer came from one of the processes, and each process answered.
  std::uint64_t counted = 0;
  for (const auto& entry : tally.by_process) {
    const long pid = entry.first;  // a plain variable: clang 14 cannot capture a binding
    CHECK_MESSAGE(std::find(run.pids.begin(), run.pids.end(), pid) != run.pids.end(), "an answer from pid " << pid);
    counted += entry.second;
  }
  CHECK(counted == tally.answered.load());
  for (const long pid : run.pids) CHECK_MESSAGE(tally.by_process[pid] > 0, "pid " << pid << " answered nothing");
}

TEST_CASE("handover: the echo server (registration style) is replaced 5 times under load: no connection refused, no echo lost") {
  Tally tally;
  const Run run = replace_under_load(
      "echo_server", AEM_ECHO_SERVER_PATH,
      [](int, const std::string& path) {
        return std::vector<std::string>{"--port", "0", "--cores", "2", "--style", "registration",
                                        "--drain-ms", std::to_string(kDrainSeconds * 1000), "--handover", path};
      },
      tally, &echo_request);
  // Each process says how many connections it served: together, every connection made.
  std::uint64_t served = 0;
  for (std::size_t i = 0; i < run.outputs.size(); ++i) {
    const std::size_t at = run.outputs[i].find("served ");
    REQUIRE_MESSAGE(at != std::string::npos, "pid " << run.pids[i] << " printed: " << run.outputs[i]);
    const unsigned long long connections = std::strtoull(run.outputs[i].c_str() + at + 7, nullptr, 10);
    CHECK_MESSAGE(connections > 0, "pid " << run.pids[i] << " served no connection");
    served += connections;
  }
  CHECK(served == tally.connections.load());
}

#endif
