// cpu_relax.hpp — the one per-architecture spin-wait hint of the library.
#pragma once

namespace aem::detail {

// cpu_relax tells the CPU that the calling thread spins on a memory location (x86-64 `pause`,
// AArch64 `yield`), so a spinning hyper-thread gives its sibling the pipeline and a spin loop's
// exit is not penalised as a memory-order mis-speculation. Elsewhere it is a compiler barrier
// only. Any thread, any context.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
  asm volatile("yield" ::: "memory");
#elif defined(__riscv)
  asm volatile(".insn i 0x0F, 0, x0, x0, 0x010" ::: "memory");  // pause (Zihintpause; a no-op where absent)
#else
  asm volatile("" ::: "memory");
#endif
}

}  // namespace aem::detail
