// Which backend a runtime gets: Config::backend, the AEM_BACKEND override, and the automatic
// fallback to epoll where io_uring is refused (checked in children that forbid io_uring_setup
// with a seccomp filter, as container runtimes do).
#include "io/backend_factory.hpp"
#include "support/child_process.hpp"
#include "support/cores.hpp"

#include <aem/capsule.hpp>
#include <aem/fd_io.hpp>
#include <aem/runtime.hpp>

#include <doctest/doctest.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <string>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

using namespace std::chrono_literals;

namespace {

#if defined(__x86_64__)
constexpr std::uint32_t kAuditArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr std::uint32_t kAuditArch = AUDIT_ARCH_AARCH64;
#endif

// refuse_io_uring makes io_uring_setup fail with `error` in this process from now on.
bool refuse_io_uring(int error) {
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kAuditArch, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (static_cast<std::uint32_t>(error) & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog program{static_cast<unsigned short>(std::size(filter)), filter};
  return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
         ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &program) == 0;
}

bool io_uring_available() { return static_cast<bool>(aem::detail::create_backend(aem::BackendKind::io_uring, 8)); }

// pipe_round_trip runs capsules that talk through a pipe, with a timed-out read first, on a
// runtime of `config`; returns the backend's name, or "failed: …".
std::string pipe_round_trip(aem::Config config) {
  int fds[2];
  if (::pipe(fds) != 0) return "failed: pipe";
  aem::Runtime rt(config);
  std::string outcome;
  rt.run([&] {
    std::array<std::byte, 8> buffer{};
    if (aem::read(fds[0], buffer, 1ms).error() != aem::errc::timed_out) {
      outcome = "failed: no time-out";
      return;
    }
    auto reader = aem::spawn([&] { return aem::read(fds[0], buffer); });
    auto writer = aem::spawn([&] { return aem::write(fds[1], std::as_bytes(std::span("hey", 3))); });
    if (!reader || !writer || writer->join().value_or(0) != 3 || reader->join().value_or(0) != 3) {
      outcome = "failed: round trip";
      return;
    }
    outcome = std::string(rt.backend_name());
  });
  ::close(fds[0]);
  ::close(fds[1]);
  return outcome.empty() ? std::string(rt.backend_name()) : outcome;
}

aem::Config with_backend(aem::BackendKind kind) {
  aem::Config config = aem_test::config_for(2);
  config.backend = kind;
  return config;
}

}  // namespace

TEST_CASE("backend selection: Config::backend picks the backend: backend_name reports it") {
  aem::Runtime idle;
  CHECK(idle.backend_name().empty());  // not started yet
  CHECK(pipe_round_trip(with_backend(aem::BackendKind::epoll)) == "epoll");
  if (io_uring_available()) CHECK(pipe_round_trip(with_backend(aem::BackendKind::io_uring)) == "io_uring");
}

TEST_CASE("backend selection: AEM_BACKEND replaces automatic, and only automatic") {
  const bool uring = io_uring_available();
  const aem_test::ChildResult child = aem_test::run_in_child([uring] {
    ::setenv("AEM_BACKEND", "epoll", 1);
    if (pipe_round_trip(with_backend(aem::BackendKind::automatic)) != "epoll") return 10;
    if (uring && pipe_round_trip(with_backend(aem::BackendKind::io_uring)) != "io_uring") return 11;
    ::setenv("AEM_BACKEND", "io_uring", 1);
    if (uring && pipe_round_trip(with_backend(aem::BackendKind::automatic)) != "io_uring") return 12;
    if (pipe_round_trip(with_backend(aem::BackendKind::epoll)) != "epoll") return 13;
    ::setenv("AEM_BACKEND", "no-such-backend", 1);  // ignored: automatic stays automatic
    const std::string name = pipe_round_trip(with_backend(aem::BackendKind::automatic));
    if (name != (uring ? "io_uring" : "epoll")) return 14;
    return 0;
  });
  INFO(child.output);
  CHECK(child.exit_code == 0);
}

TEST_CASE("backend selection: automatic falls back to epoll where seccomp refuses io_uring_setup") {
  for (int error : {ENOSYS, EPERM, EACCES}) {
    CAPTURE(error);
    const aem_test::ChildResult child = aem_test::run_in_child([error] {
      ::unsetenv("AEM_BACKEND");
      if (!refuse_io_uring(error)) return 20;
      if (io_uring_available()) return 21;  // the filter did not take
      const std::string name = pipe_round_trip(with_backend(aem::BackendKind::automatic));
      if (name != "epoll") {
        std::fprintf(stderr, "automatic gave %s\n", name.c_str());
        return 22;
      }
      // Asked for io_uring by name, the runtime does not start, and says why.
      aem::Runtime forced(with_backend(aem::BackendKind::io_uring));
      const auto started = forced.start();
      if (started || started.error() != std::error_code(error, std::generic_category())) return 23;
      return 0;
    });
    INFO(child.output);
    CHECK(child.exit_code == 0);
  }
}
