// registry.hpp — every live runtime of the process, in a plain array of a C name that gdb
// (gdb/aem.py) reads from a live process or a core file, and that signal handlers scan.
#pragma once

namespace aem::detail {
class Core;
class Diagnostics;
class RuntimeImpl;
}  // namespace aem::detail

// AemDiagEntry is one runtime: its cores (an array of core_count pointers) and its diagnostics.
// An empty entry has runtime == nullptr.
struct AemDiagEntry {
  const aem::detail::RuntimeImpl* runtime;
  aem::detail::Diagnostics* diagnostics;
  aem::detail::Core* const* cores;
  unsigned core_count;
};

inline constexpr unsigned kAemDiagEntries = 64;

// aem_diag_runtimes is the registry. Entries are written under a lock by register_runtime /
// unregister_runtime and read with atomic loads (signal handlers) or by a debugger.
extern "C" AemDiagEntry aem_diag_runtimes[kAemDiagEntries];

namespace aem::detail {

// register_runtime lists a runtime; false when the registry is full (it is then not seen by
// gdb, and its stall reports carry no backtrace).
bool register_runtime(const RuntimeImpl* runtime, Diagnostics* diagnostics, Core* const* cores, unsigned count) noexcept;
void unregister_runtime(const RuntimeImpl* runtime) noexcept;
// find_diagnostics returns the listed diagnostics of `runtime`, or nullptr. Async-signal-safe.
Diagnostics* find_diagnostics(const RuntimeImpl* runtime) noexcept;
// for_each_diagnostics calls `fn` for every listed runtime. Async-signal-safe if `fn` is.
template <typename Fn>
void for_each_diagnostics(Fn&& fn) noexcept {
  for (AemDiagEntry& entry : aem_diag_runtimes) {
    if (__atomic_load_n(&entry.runtime, __ATOMIC_ACQUIRE) == nullptr) continue;
    if (Diagnostics* found = __atomic_load_n(&entry.diagnostics, __ATOMIC_ACQUIRE)) fn(*found);
  }
}

}  // namespace aem::detail
