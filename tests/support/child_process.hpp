// child_process.hpp — run a test body in a forked child and collect how it ended and what it
// wrote to stderr/stdout (for death tests and for tests that change process limits).
#pragma once

#include <csignal>
#include <cstdlib>
#include <functional>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

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

}  // namespace aem_test
