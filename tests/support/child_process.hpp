// child_process.hpp — run a test body in a forked child and collect how it ended and what it
// wrote to stderr/stdout (for death tests and for tests that change process limits); and
// ServerProcess, a program (an example server) run as a child and told where it listens.
#pragma once

#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <functional>
#include <poll.h>
#include <string>
#include <sys/resource.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

namespace aem_test {

struct ChildResult {
  bool signaled = false;
  int signal = 0;
  int exit_code = -1;
  std::string output;
};

// run_in_child forks; the child runs `body` and exits with its return value (its stderr and
// stdout go to a pipe the parent reads).
inline ChildResult run_in_child(const std::function<int()>& body) {
  int fds[2];
  if (::pipe(fds) != 0) std::abort();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    ::dup2(fds[1], STDERR_FILENO);
    ::dup2(fds[1], STDOUT_FILENO);
    std::signal(SIGABRT, SIG_DFL);
    int code = 3;
    try {
      code = body();
    } catch (...) {
      code = 4;
    }
    std::_Exit(code);
  }
  ::close(fds[1]);
  ChildResult result;
  char buffer[4096];
  for (ssize_t n; (n = ::read(fds[0], buffer, sizeof buffer)) > 0;) result.output.append(buffer, static_cast<std::size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  result.signaled = WIFSIGNALED(status);
  if (result.signaled) result.signal = WTERMSIG(status);
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  return result;
}

// ServerProcess runs a server program with `args` and reads its port from the line of output
// that says "listening on ADDRESS:PORT" (among its first lines). `nofile`, when not 0, is its
// RLIMIT_NOFILE. The destructor kills a server still running. Waits are bounded by `guard`
// (hang guards, not timing assertions).
class ServerProcess {
 public:
  ServerProcess(const std::string& path, std::vector<std::string> args, rlim_t nofile = 0,
                std::chrono::seconds guard = std::chrono::seconds(30))
      : guard_(guard) {
    REQUIRE_MESSAGE(std::filesystem::exists(path), path << " is not built (build aem_http_server and aem_echo_server)");
    args.insert(args.begin(), path);
    int out[2];
    REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::dup2(out[1], STDOUT_FILENO);
      if (nofile != 0) {
        const rlimit limit{nofile, nofile};
        if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) std::_Exit(126);
      }
      std::vector<char*> argv;
      for (std::string& arg : args) argv.push_back(arg.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      std::_Exit(127);
    }
    ::close(out[1]);
    stdout_fd_ = out[0];
    for (int i = 0; i < 4 && port_ == 0; ++i) {
      const std::string line = read_line();
      const std::size_t at = line.find("listening on ");
      if (at == std::string::npos) continue;
      std::string address = line.substr(at + 13);
      address = address.substr(0, address.find_first_of(", "));
      port_ = std::atoi(address.substr(address.rfind(':') + 1).c_str());
    }
    REQUIRE_MESSAGE(port_ > 0, "the server did not say where it listens");
  }
  ~ServerProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (stdout_fd_ >= 0) ::close(stdout_fd_);
  }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  void signal(int signo) const { REQUIRE(::kill(pid_, signo) == 0); }
  // alive: the server has not exited (a check that leaves its status to wait_exit).
  bool alive() const {
    siginfo_t info{};
    return ::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == 0;
  }

  // wait_exit returns the exit status (or 128 + the signal); fails the test past the guard.
  int wait_exit() {
    const auto give_up = std::chrono::steady_clock::now() + guard_;
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > give_up) FAIL("the server did not exit");
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  // rest_of_output reads what the server wrote to stdout after the line that named its port,
  // up to the end (call once it has exited).
  std::string rest_of_output() {
    std::string text;
    char buffer[4096];
    pollfd p{stdout_fd_, POLLIN, 0};
    while (::poll(&p, 1, static_cast<int>(std::chrono::milliseconds(guard_).count())) == 1) {
      const ssize_t n = ::read(stdout_fd_, buffer, sizeof buffer);
      if (n <= 0) break;
      text.append(buffer, static_cast<std::size_t>(n));
    }
    return text;
  }

 private:
  std::string read_line() {
    std::string line;
    char c = 0;
    pollfd p{stdout_fd_, POLLIN, 0};
    while (::poll(&p, 1, static_cast<int>(std::chrono::milliseconds(guard_).count())) == 1 &&
           ::read(stdout_fd_, &c, 1) == 1 && c != '\n')
      line += c;
    return line;
  }

  std::chrono::seconds guard_;
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  int port_ = 0;
};

}  // namespace aem_test
