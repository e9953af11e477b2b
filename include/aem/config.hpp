// config.hpp — the settings of a Runtime.
#pragma once

#include <aem/arena.hpp>
#include <aem/log.hpp>
#include <aem/policy.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace aem {

// BackendKind selects how a core talks to the kernel. Runtime::backend_name() tells which
// one the cores use.
enum class BackendKind : std::uint8_t {
  // automatic is io_uring, or epoll where io_uring set-up is refused (ENOSYS: an old kernel or
  // a seccomp filter; EPERM: kernel.io_uring_disabled or seccomp; EACCES: an LSM). The
  // environment variable AEM_BACKEND=io_uring|epoll replaces automatic (other values are
  // ignored).
  automatic,
  // io_uring only: starting the runtime fails where io_uring is refused.
  io_uring,
  // epoll: readiness-based system calls. The same API and results, with fewer system calls
  // saved: epoll cannot wait for regular files (nor block devices or directories), so aem::read
  // / write / read_at / write_at of those run on the runtime's pool of blocking threads
  // (aem::blocking, Config::blocking_threads) while the calling capsule waits.
  epoll,
};

// kMaxRingEntries and kMaxCqEntries bound Config::ring_entries and Config::cq_entries (the
// kernel's IORING_MAX_ENTRIES and IORING_MAX_CQ_ENTRIES).
inline constexpr unsigned kMaxRingEntries = 32768;
inline constexpr unsigned kMaxCqEntries = 2 * kMaxRingEntries;

// Config holds a Runtime's settings; every field has a usable default.
//
// Example:
//   aem::Runtime rt(aem::Config{.cores = 2, .capsules_per_core = 256});
struct Config {
  // cores is the number of scheduler threads (0: one per CPU the process may run on).
  unsigned cores = 0;
  // pin_threads pins core i to the i-th CPU of the process's affinity mask (modulo its size).
  bool pin_threads = true;
  // stack_size is the usable stack of one capsule, rounded up to pages; a PROT_NONE guard page
  // sits below it. Each capsule costs two memory mappings: vm.max_map_count (65530 by
  // default) caps a process near 32k capsules in all.
  std::size_t stack_size = 64 * 1024;
  // capsules_per_core are mapped when a core starts, so the first spawns never map memory.
  std::size_t capsules_per_core = 64;
  // max_capsules caps one core's pool; a spawn beyond it fails with errc::resource_limit.
  std::size_t max_capsules = 16384;
  // run_budget is how many capsules a core runs before it reaps completions and timers again;
  // it also bounds a burst of fresh-capsule activations waiting to start (Executor). At least
  // 1: start() fails with errc::invalid_argument on 0.
  unsigned run_budget = 64;
  // starvation_budget: after this many consecutive picks that passed over a non-empty lower
  // priority level, one pick is given to a lower level (0 disables: strict priority).
  unsigned starvation_budget = 32;
  // idle_spin is the longest an idle core polls its mailbox (and, on io_uring, its rings)
  // before it sleeps in the kernel: cross-core messages and completions that come within it
  // arrive without a sleep and a wake-up. The poll adapts, as KVM's halt polling does: idle
  // stretches longer than idle_spin halve it, down to none (a poll that could not have caught
  // them only burns CPU, or a CPU quota); shorter ones double it back up to idle_spin.
  // CoreMetrics::spin_ns counts the time spent polling. 0 sleeps at once.
  std::chrono::nanoseconds idle_spin = std::chrono::microseconds(20);
  // coalesce_window lets I/O completions accumulate while a busy core sleeps, the way a
  // network card moderates its interrupts. A core that handled completions since it last went
  // idle does not spin, and sleeps until coalesce_batch completions are ready or
  // coalesce_window has passed (a due timer still ends the sleep on time); then it handles all
  // of them in one turn. Under load that saves a wake-up and a system call per completion, and
  // peers get their replies in batches (see bench/load/README.md for the figures). The price:
  // up to coalesce_window of added latency per completion, and per cross-core message or stop
  // request that arrives while the core sleeps. A window that brings nothing ends it: the next
  // sleep waits for the first completion as usual, so an idle core costs nothing. 0 (the
  // default) turns it off; at most 1 s. On epoll, which cannot count completions while asleep,
  // the core sleeps the whole window. Runtime::start / run fail with errc::invalid_argument
  // on a window out of range or a batch of 0.
  std::chrono::nanoseconds coalesce_window{0};
  unsigned coalesce_batch = 64;
  // timer_tick is the resolution of each core's timer wheel: a timer fires at most one tick late.
  std::chrono::nanoseconds timer_tick = std::chrono::microseconds(50);
  // arena configures each core's BuddyArena, from which event data on that core is allocated
  // (this_core::arena()). Defaults: 64 MiB of virtual-memory zone per core, so resident memory
  // follows what is in use.
  ArenaConfig arena = [] {
    ArenaConfig defaults;
    defaults.zone = Zone::virtual_memory;
    return defaults;
  }();
  // recv_buffers receive buffers of recv_buffer_size bytes, taken from the arena when the first
  // on_data registration of a core is made, are shared by all of the core's on_data
  // registrations (a provided-buffer ring): an idle connection holds none. recv_buffers is a
  // power of two, at most 32768.
  unsigned recv_buffers = 256;
  std::size_t recv_buffer_size = 4096;
  // send_queue_bound bounds the bytes a stream's send() queue holds before the stream pushes
  // back on its input: above it, the on_data registrations of the stream's descriptor on the
  // send core pause their receive (the peer's bytes wait in the kernel, as at a registration's
  // queue_bound), and a capsule that calls send() into the full queue suspends; both go on
  // when the queue has drained to half of it. A peer that sends but never reads therefore
  // holds about this much of the server's memory, not without bound. A send that fails (the
  // peer reset) drops the queue and resumes the receive at once, so the registration sees the
  // reset and ends. 0: no bound.
  std::size_t send_queue_bound = 256 * 1024;
  // ring_entries is the submission queue size of each core's io_uring: a power of two, 1 to
  // 32768 (kMaxRingEntries). More prepared operations than that are submitted in several system
  // calls of one loop turn.
  unsigned ring_entries = 256;
  // cq_entries is the completion queue size of each core's io_uring: 0 (the kernel's default,
  // twice ring_entries) or a power of two from ring_entries to 65536 (kMaxCqEntries).
  // Completions that find the queue full are not lost: the kernel keeps them
  // (IORING_FEAT_NODROP) and the core fetches them on its next turn, counting an overflow in
  // CoreMetrics::cq_overflows; a larger queue only saves those extra system calls.
  // The epoll backend has no rings, but refuses the values io_uring would refuse, so a Config
  // means the same on either backend. Runtime::start / run fail with errc::invalid_argument
  // on a bad size.
  unsigned cq_entries = 0;
  BackendKind backend = BackendKind::automatic;
  // policy limits the whole runtime, counted across all its cores (registrations, handlers
  // running at once, capsules, source types, executors); unlimited by default (policy.hpp).
  Policy policy{};
  // blocking_threads caps the runtime's pool of OS threads that run aem::blocking calls (and,
  // on the epoll backend, regular-file reads and writes). The pool is shared by all cores;
  // threads start on demand, so an application that never blocks has none. Such calls mostly
  // wait (a database, DNS, a disk), so the cap is well above the core count; it bounds the
  // threads a flood of slow calls can create. At least 1: start() fails with
  // errc::invalid_argument on 0.
  unsigned blocking_threads = 64;
  // blocking_keep_alive is how long an idle pool thread waits for another call before it exits.
  // Negative: start() fails with errc::invalid_argument.
  std::chrono::nanoseconds blocking_keep_alive = std::chrono::seconds(10);
  // blocking_queue_bound is how many calls may wait for a pool thread when all blocking_threads
  // are busy; one more fails at once with errc::blocking_queue_full (0: a call runs at once or
  // is refused). The queue never grows beyond it.
  std::size_t blocking_queue_bound = 4096;
  // blocking_shutdown_wait is how long Runtime::stop waits for pool calls that are still
  // running; after it, it reports each through `log` (where it was called, for how long) and
  // returns, leaving the thread to finish the call and drop its result. Negative: start() fails
  // with errc::invalid_argument.
  std::chrono::nanoseconds blocking_shutdown_wait = std::chrono::seconds(1);
  // log receives every diagnostic the runtime writes (a handler that threw, activations lost at
  // a queue bound, a listener pausing for want of descriptors, a stall); empty (the default):
  // aem::write_log_to_stderr, "aem: <message>" on stderr. It is called concurrently from the
  // runtime's threads: see LogSink (log.hpp) for what it may do. Each Runtime routes its own
  // threads' messages (its cores, its blocking pool, Runtime::start / stop) to its own sink,
  // so several runtimes in one process may log to different places. A message raised on a
  // thread of no runtime (an arena misused from a foreign thread, say) goes to the sink of the
  // oldest live Runtime that has one, else to stderr.
  LogSink log{};
  // stall_threshold: a core that runs one capsule, or one turn of its loop, longer than this
  // without switching is reported through `log` (warning): the core, the capsule (id, spawn
  // site, priority, group), how long, and the backtrace of the code that held the core, taken
  // on the core's thread by a signal (SIGRTMAX - 1, which the application must leave alone).
  // A watchdog thread per runtime looks every quarter of it; reports of one core are spaced by
  // a back-off that doubles up to a minute, while CoreMetrics::stalls counts them all. Time
  // the core sleeps waiting for work is never a stall. 0 turns it off; negative: start() fails
  // with errc::invalid_argument. Format: docs/diagnostics.md.
  std::chrono::nanoseconds stall_threshold = std::chrono::milliseconds(200);
  // dump_signal: when the process receives this signal (e.g. SIGUSR2), the runtime writes a
  // capsule dump (Runtime::dump) through `log` (info). 0 (the default) installs nothing.
  // SIGKILL, SIGSTOP, the stall signal or a number out of range: start() fails with
  // errc::invalid_argument.
  int dump_signal = 0;
};

}  // namespace aem
