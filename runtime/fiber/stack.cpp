#include "runtime/fiber/stack.hpp"

#include <aem/detail/fault_injection.hpp>
#include <aem/log.hpp>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sys/mman.h>
#include <unistd.h>

namespace aem::detail {
namespace {

std::size_t page_size() noexcept {
  static const std::size_t size = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return size;
}

std::size_t round_up(std::size_t n, std::size_t to) noexcept { return (n + to - 1) / to * to; }

constexpr std::size_t kAltStackSize = 64 * 1024;

std::atomic<GuardLookup> g_lookup{nullptr};
thread_local void* t_altstack = nullptr;

struct sigaction g_previous_segv;
struct sigaction g_previous_bus;

// Async-signal-safe formatting: only write(2) and stack buffers.
char* append(char* out, const char* text) noexcept {
  while (*text != '\0') *out++ = *text++;
  return out;
}
char* append_number(char* out, std::uint64_t value) noexcept {
  char digits[24];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0);
  while (n > 0) *out++ = digits[--n];
  return out;
}

void on_fault(int signo, siginfo_t* info, void* context) {
  const GuardLookup lookup = g_lookup.load(std::memory_order_acquire);
  const GuardWatch* watch = lookup != nullptr ? lookup() : nullptr;
  const auto address = reinterpret_cast<std::uintptr_t>(info->si_addr);
  if (watch != nullptr && address >= watch->guard_low && address < watch->guard_high) {
    char message[160];
    char* out = append(message, "capsule ");
    out = append_number(out, watch->capsule_id);
    out = append(out, " overflowed its ");
    out = append_number(out, watch->stack_kib);
    out = append(out, " KiB stack (raise aem::Config::stack_size)");
    // Straight to stderr, not Config::log: a sink is not async-signal-safe, and we abort next.
    write_log_to_stderr({LogLevel::error, kNoCore, {message, static_cast<std::size_t>(out - message)}});
    std::signal(SIGABRT, SIG_DFL);
    std::abort();
  }
  // Not ours: hand it to whoever handled it before, or let the default action happen.
  const struct sigaction& previous = signo == SIGBUS ? g_previous_bus : g_previous_segv;
  if ((previous.sa_flags & SA_SIGINFO) != 0 && previous.sa_sigaction != nullptr) {
    previous.sa_sigaction(signo, info, context);
    return;
  }
  if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN && previous.sa_handler != nullptr) {
    previous.sa_handler(signo);
    return;
  }
  std::signal(signo, SIG_DFL);  // returning re-executes the fault, which now kills the process
}

}  // namespace

Result<StackMapping> map_guarded_stack(std::size_t stack_size, std::size_t reserve) noexcept {
  const std::size_t page = page_size();
  StackMapping m;
  m.usable_size = round_up(stack_size, page);
  const std::size_t top = round_up(reserve, 64);
  m.total = round_up(page + m.usable_size + top, page);
  // An injected failure (tests) is the mmap's ENOMEM at vm.max_map_count.
  void* base = faults::hit(faults::Site::stack_map)
                   ? (errno = ENOMEM, MAP_FAILED)
                   : ::mmap(nullptr, m.total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) return errno == ENOMEM ? make_error_code(errc::map_count_limit) : errno_code(errno);
  if (::mprotect(base, page, PROT_NONE) != 0) {
    // Splitting the mapping needs a second map entry: ENOMEM here is vm.max_map_count.
    const int err = errno;
    ::munmap(base, m.total);
    return err == ENOMEM ? make_error_code(errc::map_count_limit) : errno_code(err);
  }
  m.base = base;
  m.usable = static_cast<char*>(base) + page;
  m.top_reserve = static_cast<char*>(base) + m.total - top;
  m.usable_size = static_cast<std::size_t>(static_cast<char*>(m.top_reserve) - static_cast<char*>(m.usable));
  return m;
}

void unmap_stack(StackMapping& mapping) noexcept {
  if (mapping.base != nullptr) ::munmap(mapping.base, mapping.total);
  mapping = StackMapping{};
}

void set_guard_lookup(GuardLookup lookup) noexcept { g_lookup.store(lookup, std::memory_order_release); }

Result<void> install_overflow_handler() noexcept {
  // Checked at every core start, not once: a handler installed after ours (a test framework,
  // the application) replaces it; we go back in front and chain to it.
  static std::mutex mutex;
  {
    std::lock_guard lock(mutex);
    for (int signo : {SIGSEGV, SIGBUS}) {
      struct sigaction current;
      if (::sigaction(signo, nullptr, &current) != 0) return errno_code(errno);
      if ((current.sa_flags & SA_SIGINFO) != 0 && current.sa_sigaction == &on_fault) continue;
      struct sigaction action;
      std::memset(&action, 0, sizeof action);
      action.sa_sigaction = &on_fault;
      action.sa_flags = SA_SIGINFO | SA_ONSTACK;
      sigemptyset(&action.sa_mask);
      if (::sigaction(signo, &action, signo == SIGBUS ? &g_previous_bus : &g_previous_segv) != 0) return errno_code(errno);
    }
  }
  if (t_altstack == nullptr) {
    void* memory = ::mmap(nullptr, kAltStackSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) return errno_code(errno);
    stack_t ss{};
    ss.ss_sp = memory;
    ss.ss_size = kAltStackSize;
    if (::sigaltstack(&ss, nullptr) != 0) {
      const int err = errno;
      ::munmap(memory, kAltStackSize);
      return errno_code(err);
    }
    t_altstack = memory;
  }
  return {};
}

void remove_thread_altstack() noexcept {
  if (t_altstack == nullptr) return;
  stack_t ss{};
  ss.ss_flags = SS_DISABLE;
  ::sigaltstack(&ss, nullptr);
  ::munmap(t_altstack, kAltStackSize);
  t_altstack = nullptr;
}

}  // namespace aem::detail
