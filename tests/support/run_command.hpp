// run_command.hpp — runs a shell command line and returns what it printed, for tests that drive
// outside programs (gdb, openssl).
#pragma once

#include <cstddef>
#include <cstdio>
#include <string>

namespace aem_test {

// run_command runs `command` through the shell (popen) and returns its standard output; empty if
// the shell could not be started. The exit status is not looked at: tests check the output.
inline std::string run_command(const std::string& command) {
  std::string output;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return output;
  char buffer[4096];
  while (std::size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
  ::pclose(pipe);
  return output;
}

}  // namespace aem_test
