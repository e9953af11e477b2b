// runtime.hpp — aem::Runtime: N pinned scheduler cores, each with its own capsule pool, ready
// queue, io_uring and timer wheel.
#pragma once

#include <aem/capsule.hpp>
#include <aem/config.hpp>
#include <aem/detail/task.hpp>
#include <aem/diagnostics.hpp>
#include <aem/error.hpp>
#include <aem/export.hpp>
#include <aem/metrics.hpp>
#include <aem/result.hpp>

#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace aem {

namespace detail {
class RuntimeImpl;

// PromiseTask runs a function submitted from outside the runtime and fulfils a std::promise.
template <typename F, typename R>
struct PromiseTask final : TaskState {
  F fn;
  std::promise<R> promise;

  template <typename G>
  explicit PromiseTask(G&& g) : fn(std::forward<G>(g)) {
    run = &run_impl;
    dispose = &dispose_impl;
  }
  static void run_impl(TaskState* state) noexcept {
    auto* self = static_cast<PromiseTask*>(state);
    try {
      if (self->launch_error) throw std::system_error(self->launch_error.get(), "aem::Runtime::submit");
      if constexpr (std::is_void_v<R>) {
        std::invoke(std::move(self->fn));
        self->promise.set_value();
      } else {
        self->promise.set_value(std::invoke(std::move(self->fn)));
      }
    } catch (...) {
      self->promise.set_exception(std::current_exception());
    }
  }
  static void dispose_impl(TaskState* state) noexcept { static_cast<PromiseTask*>(state)->~PromiseTask(); }
};

AEM_EXPORT void* task_allocate(std::size_t size, std::size_t align);
AEM_EXPORT void task_free(void* p) noexcept;
}  // namespace detail

// Runtime owns the cores. Either run a root function to completion on the calling thread
// (`run`), or start the cores on background threads and hand them work from the existing
// program (`start` / `submit` / `stop`).
//
// Example:
//   aem::Runtime rt(aem::Config{.cores = 2});
//   int answer = rt.run([] {
//     auto c = aem::spawn([] { return 6 * 7; }, {.core = 1});
//     return c->join();
//   });
class AEM_EXPORT Runtime {
 public:
  explicit Runtime(Config config = {});
  ~Runtime();  // stops the runtime if it was started
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // run makes the calling thread core 0, starts the other cores on pinned threads, runs `fn`
  // in a capsule on core 0 and returns its result when it ends, after every core has shut
  // down: capsules still running then are unwound (see docs/shutdown.md). An exception from
  // `fn` is rethrown here. Call from a plain thread (not from a capsule).
  // Throws std::system_error: errc::already_running, or what starting the cores failed with.
  template <typename F>
  auto run(F&& fn) -> detail::SpawnResult<F> {
    using R = detail::SpawnResult<F>;
    detail::Task<std::decay_t<F>, R> root(std::forward<F>(fn));
    root.home = detail::TaskHome::caller;
    run_root(&root).value();
    return detail::take_outcome<R>(root);
  }

  // start starts every core on its own pinned background thread and returns once they run.
  // Errors: errc::already_running; the system error that creating a core's ring, stacks or
  // thread failed with (nothing is left running then). Call from a plain thread.
  Result<void> start();

  // stop shuts the cores down (running capsules are unwound) and joins their threads. From a
  // plain thread it returns when all is stopped; from a capsule of this runtime it only
  // requests the stop. Idempotent.
  void stop();

  // submit runs `fn` in a capsule on `core` and returns a future of its result. Call from any
  // thread, including threads that aem does not know. The future holds a std::system_error
  // with errc::not_running, errc::shutting_down or errc::no_such_core when `fn` cannot run.
  template <typename F, typename R = detail::SpawnResult<F>>
  std::future<R> submit(unsigned core, F&& fn) {
    using T = detail::PromiseTask<std::decay_t<F>, R>;
    void* memory = detail::task_allocate(sizeof(T), alignof(T));
    T* task = new (memory) T(std::forward<F>(fn));
    std::future<R> future = task->promise.get_future();
    inject(core, task);
    return future;
  }

  // cores returns the number of cores (Config::cores resolved).
  unsigned cores() const noexcept;
  const Config& config() const noexcept;
  // running reports whether the runtime accepts work: true from start (or inside run) until a
  // stop is requested — by stop() from any thread or capsule, or by run's function returning.
  // When it is false, submit fails (errc::shutting_down while the cores wind down,
  // errc::not_running once they have stopped). A stop requested from a capsule returns at once
  // and the cores finish in the background; stop() from a plain thread (or the destructor)
  // waits for them, and only then may start() run the runtime again (before that it returns
  // errc::already_running). Any thread.
  bool running() const noexcept;
  // backend_name returns "io_uring" or "epoll": the kernel interface the cores use (see
  // Config::backend and AEM_BACKEND), or used until the last stop; "" before the first start.
  // Any thread.
  std::string_view backend_name() const noexcept;
  // metrics returns a snapshot of every core, in core order (see CoreMetrics; to_prometheus
  // renders it). Counters are read as they are; the gauges of a running core are taken by that
  // core at the start of its next loop turn, which this call waits for (a core busy in one
  // capsule that never suspends answers when it does). The calling capsule's own core is
  // read at once; a stopped runtime reports what its cores published last. Call from any
  // thread: a capsule waits by yielding, a plain thread by sleeping briefly.
  std::vector<CoreMetrics> metrics() const;

  // dump hands `sink` a description of every core and every live capsule on it: its id, state
  // (running, ready, or suspended and on what: a descriptor and operation, a sleep, a mutex and
  // its holder, a channel, a join or cross-core reply, a blocking call), priority, group, age,
  // spawn site and, for a capsule that is not running, its backtrace from its saved registers
  // (format: docs/diagnostics.md). Each core describes itself on its own thread between two
  // capsules; a core that does not answer within `per_core` (a stalled one) is named as such
  // and skipped. A stopped runtime reports its cores as not running. Call from any thread; from
  // a capsule, its own core is described at once and the others are waited for with the
  // calling thread blocked (at most `per_core` each).
  void dump(const DumpSink& sink, std::chrono::milliseconds per_core = std::chrono::seconds(1)) const;

 private:
  Result<void> run_root(detail::TaskState* root);
  void inject(unsigned core, detail::TaskState* task) noexcept;

  std::unique_ptr<detail::RuntimeImpl> impl_;
};

}  // namespace aem
