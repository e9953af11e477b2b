// probes_test.cpp — the library carries a USDT note (provider "aem") for every probe that
// docs/tracing.md lists, as `readelf -n` shows them to perf and bpftrace, and none of them
// passes an argument perf cannot read.
#include <doctest/doctest.h>

#include <cstdio>
#include <set>
#include <string>

#ifndef AEM_LIBRARY_PATH
#error "tests/CMakeLists.txt passes the path of the built library"
#endif

namespace {

// run_command returns what `command` wrote to stdout, and false in `ok` when it could not run
// or failed.
std::string run_command(const std::string& command, bool& ok) {
  std::string output;
  FILE* pipe = ::popen(command.c_str(), "r");
  ok = pipe != nullptr;
  if (!ok) return output;
  char buffer[4096];
  for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) output.append(buffer, n);
  ok = ::pclose(pipe) == 0;
  return output;
}

// aem_probe_names returns the names of the provider-aem probes in readelf -n's notes: each
// stapsdt note lists "Provider: aem" and then "Name: <probe>".
std::set<std::string> aem_probe_names(const std::string& notes) {
  std::set<std::string> names;
  std::size_t at = 0;
  while ((at = notes.find("Provider: aem\n", at)) != std::string::npos) {
    at += 14;
    const std::size_t name = notes.find("Name: ", at);
    if (name == std::string::npos) break;
    const std::size_t end = notes.find('\n', name);
    names.insert(notes.substr(name + 6, end - name - 6));
  }
  return names;
}

// constant_arguments returns the aem probes (name and argument list) that pass a constant: perf
// cannot read an immediate ("$0") and refuses every location of such a probe.
std::string constant_arguments(const std::string& notes) {
  std::string found;
  std::size_t at = 0;
  while ((at = notes.find("Provider: aem\n", at)) != std::string::npos) {
    at += 14;
    const std::size_t name = notes.find("Name: ", at);
    const std::size_t arguments = notes.find("Arguments:", at);
    if (name == std::string::npos || arguments == std::string::npos) break;
    const std::size_t end = notes.find('\n', arguments);
    const std::string list = notes.substr(arguments, end - arguments);
    if (list.find('$') != std::string::npos) found += notes.substr(name, notes.find('\n', name) - name) + " " + list + "\n";
  }
  return found;
}

}  // namespace

TEST_CASE("probes: readelf -n of the library shows a stapsdt note for every aem probe") {
  if (!AEM_PROBES_BUILT) {
    MESSAGE("the library was built with AEM_PROBES=OFF: skipped");
    return;
  }
  bool have_readelf = false;
  (void)run_command("readelf --version >/dev/null 2>&1", have_readelf);
  if (!have_readelf) {
    MESSAGE("readelf is not installed (binutils): skipped");
    return;
  }
  bool ok = false;
  const std::string notes = run_command(std::string("readelf -n '") + AEM_LIBRARY_PATH + "' 2>/dev/null", ok);
  REQUIRE(ok);
  const std::set<std::string> names = aem_probe_names(notes);
  std::string found;
  for (const std::string& name : names) found += name + " ";
  INFO("probes found: " << found);
  for (const char* probe : {"spawn", "capsule_exit", "switch", "to_scheduler", "activation", "io_submit", "io_complete",
                            "cross_core_post", "blocking_start", "blocking_end", "stall"}) {
    CHECK_MESSAGE(names.count(probe) == 1, "no note for probe aem:" << std::string(probe));
  }
  CHECK_MESSAGE(constant_arguments(notes).empty(), "probes with a constant argument:\n" << constant_arguments(notes));
}
