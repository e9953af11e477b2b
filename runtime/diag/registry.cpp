// registry.cpp — the process's list of runtimes (registry.hpp) and note_wait.
#include "runtime/diag/registry.hpp"

#include "runtime/sched/core.hpp"

#include <aem/detail/wait_note.hpp>

#include <mutex>

extern "C" {
// Used by gdb/aem.py by name: keep it, and keep it out of any symbol stripping.
[[gnu::used, gnu::visibility("default")]] AemDiagEntry aem_diag_runtimes[kAemDiagEntries] = {};
}

namespace aem::detail {
namespace {
std::mutex g_registry_writers;
}  // namespace

bool register_runtime(const RuntimeImpl* runtime, Diagnostics* diagnostics, Core* const* cores, unsigned count) noexcept {
  std::lock_guard lock(g_registry_writers);
  for (AemDiagEntry& entry : aem_diag_runtimes) {
    if (entry.runtime != nullptr) continue;
    entry.cores = cores;
    entry.core_count = count;
    __atomic_store_n(&entry.diagnostics, diagnostics, __ATOMIC_RELEASE);
    __atomic_store_n(&entry.runtime, runtime, __ATOMIC_RELEASE);  // last: the entry is complete
    return true;
  }
  return false;
}

void unregister_runtime(const RuntimeImpl* runtime) noexcept {
  std::lock_guard lock(g_registry_writers);
  for (AemDiagEntry& entry : aem_diag_runtimes) {
    if (entry.runtime != runtime) continue;
    __atomic_store_n(&entry.runtime, nullptr, __ATOMIC_RELEASE);
    __atomic_store_n(&entry.diagnostics, nullptr, __ATOMIC_RELEASE);
    entry.cores = nullptr;
    entry.core_count = 0;
  }
}

Diagnostics* find_diagnostics(const RuntimeImpl* runtime) noexcept {
  for (AemDiagEntry& entry : aem_diag_runtimes) {
    if (__atomic_load_n(&entry.runtime, __ATOMIC_ACQUIRE) == runtime) return __atomic_load_n(&entry.diagnostics, __ATOMIC_ACQUIRE);
  }
  return nullptr;
}

void note_wait(WaitKind kind, const void* object, std::intptr_t arg) noexcept {
  Core* core = Core::current_core();
  CapsuleControl* self = core != nullptr ? core->current() : nullptr;
  if (self == nullptr) return;
  self->wait_kind = kind;
  self->wait_object = object;
  self->wait_arg = arg;
}

}  // namespace aem::detail
