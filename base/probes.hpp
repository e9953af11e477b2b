// probes.hpp — the library's USDT trace points (provider "aem"), for perf, bpftrace and
// SystemTap. Each AEM_PROBE_* is one nop instruction plus an ELF note (.note.stapsdt) naming
// the probe and where its arguments live; a tracer that attaches turns the nop into a trap.
// With no tracer attached a probe costs that nop, and its arguments are not computed beyond
// what the code already has in registers: pass values that are at hand, never a call. Never
// pass a constant either: perf cannot read an immediate operand and refuses the probe's
// locations when their argument lists differ.
//
// Built with AEM_PROBES=1 (the CMake option AEM_PROBES, on where <sys/sdt.h> is found); else
// every macro compiles to nothing and its arguments are not evaluated.
//
// The probe list (name: arguments) is the contract docs/tracing.md documents; a probe added
// here gets a line there and in tests/unit/base/probes_test.cpp.
//   spawn           core, capsule id, priority               a capsule starts a task
//   capsule_exit    core, capsule id                         its task returned
//   switch          core, from capsule id, to capsule id     a capsule is switched to (from 0:
//                                                            from the core's loop)
//   to_scheduler    core, capsule id                         a capsule leaves for the core's loop
//   activation      core, slot, generation, source kind      a registration activates (slot and
//                                                            generation: of its EventId)
//   io_submit       opcode (IoOpcode), fd, token             an I/O operation is submitted
//   io_complete     token, result (-errno), flags            a completion is delivered
//   cross_core_post from core, to core, mail kind            a message to another core's mailbox
//                                                            (from = -1: a thread of no core)
//   blocking_start  call, function (char*), file (char*), line   a pool thread starts a blocking
//                                                            call (where aem::blocking was called)
//   blocking_end    call                                     ... and it returned
//   stall           core, capsule id, nanoseconds            a core ran one capsule or turn too long
#pragma once

#if defined(AEM_PROBES) && AEM_PROBES
#include <sys/sdt.h>

// GCC weighs an asm statement by its lines when it decides what to inline, and a probe's note
// is some forty: a probe kept Core::launch and Core::resume out of line (BM_SpawnJoin and
// BM_Activation ran 35-50% slower). `asm inline` (GCC 9, Clang 11) says the statement is
// small, as it is: one nop. Same expansion as <sys/sdt.h>'s own (without semaphores).
#if defined(_SDT_ASM_BODY) && defined(_SDT_ASM_BASE) && !defined(_SDT_HAS_SEMAPHORES)
#undef _SDT_PROBE
#define _SDT_PROBE(provider, name, n, arglist)                                                             \
  do {                                                                                                     \
    __asm__ __volatile__ __inline__(_SDT_ASM_BODY(provider, name, _SDT_ASM_ARGS, (n))::_SDT_ASM_OPERANDS_##n \
                                        arglist);                                                          \
    __asm__ __volatile__ __inline__(_SDT_ASM_BASE);                                                        \
  } while (0)
#endif

#define AEM_PROBE_SPAWN(core, capsule, priority) DTRACE_PROBE3(aem, spawn, core, capsule, priority)
#define AEM_PROBE_CAPSULE_EXIT(core, capsule) DTRACE_PROBE2(aem, capsule_exit, core, capsule)
#define AEM_PROBE_SWITCH(core, from, to) DTRACE_PROBE3(aem, switch, core, from, to)
#define AEM_PROBE_TO_SCHEDULER(core, from) DTRACE_PROBE2(aem, to_scheduler, core, from)
#define AEM_PROBE_ACTIVATION(core, slot, generation, kind) DTRACE_PROBE4(aem, activation, core, slot, generation, kind)
#define AEM_PROBE_IO_SUBMIT(opcode, fd, token) DTRACE_PROBE3(aem, io_submit, opcode, fd, token)
#define AEM_PROBE_IO_COMPLETE(token, result, flags) DTRACE_PROBE3(aem, io_complete, token, result, flags)
#define AEM_PROBE_CROSS_CORE_POST(from, to, kind) DTRACE_PROBE3(aem, cross_core_post, from, to, kind)
#define AEM_PROBE_BLOCKING_START(call, function, file, line) \
  DTRACE_PROBE4(aem, blocking_start, call, function, file, line)
#define AEM_PROBE_BLOCKING_END(call) DTRACE_PROBE1(aem, blocking_end, call)
#define AEM_PROBE_STALL(core, capsule, nanoseconds) DTRACE_PROBE3(aem, stall, core, capsule, nanoseconds)

#else
// Off: the arguments are named (no unused-variable warning where one exists only for a probe)
// inside sizeof, so they are never evaluated.
#define AEM_PROBE_UNUSED_(...) ((void)sizeof((__VA_ARGS__, 0)))
#define AEM_PROBE_SPAWN(core, capsule, priority) AEM_PROBE_UNUSED_((void)(core), (void)(capsule), (void)(priority))
#define AEM_PROBE_CAPSULE_EXIT(core, capsule) AEM_PROBE_UNUSED_((void)(core), (void)(capsule))
#define AEM_PROBE_SWITCH(core, from, to) AEM_PROBE_UNUSED_((void)(core), (void)(from), (void)(to))
#define AEM_PROBE_TO_SCHEDULER(core, from) AEM_PROBE_UNUSED_((void)(core), (void)(from))
#define AEM_PROBE_ACTIVATION(core, slot, generation, kind) \
  AEM_PROBE_UNUSED_((void)(core), (void)(slot), (void)(generation), (void)(kind))
#define AEM_PROBE_IO_SUBMIT(opcode, fd, token) AEM_PROBE_UNUSED_((void)(opcode), (void)(fd), (void)(token))
#define AEM_PROBE_IO_COMPLETE(token, result, flags) AEM_PROBE_UNUSED_((void)(token), (void)(result), (void)(flags))
#define AEM_PROBE_CROSS_CORE_POST(from, to, kind) AEM_PROBE_UNUSED_((void)(from), (void)(to), (void)(kind))
#define AEM_PROBE_BLOCKING_START(call, function, file, line) \
  AEM_PROBE_UNUSED_((void)(call), (void)(function), (void)(file), (void)(line))
#define AEM_PROBE_BLOCKING_END(call) AEM_PROBE_UNUSED_((void)(call))
#define AEM_PROBE_STALL(core, capsule, nanoseconds) AEM_PROBE_UNUSED_((void)(core), (void)(capsule), (void)(nanoseconds))
#endif
