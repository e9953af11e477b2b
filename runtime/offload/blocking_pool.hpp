// blocking_pool.hpp — the runtime's pool of OS threads behind aem::blocking: a queue ordered by
// the callers' priorities (FIFO within one), bounded by Config::blocking_queue_bound; threads
// started on demand up to Config::blocking_threads, the most recently idle one reused first so
// the others can reach Config::blocking_keep_alive and exit.
//
// Ownership: a call is held by its caller and, while queued or running, by the pool (two
// references, BlockingCall::references); whoever lets go last destroys it. The pool's state is
// shared by the runtime and each of its threads, so a thread still running a call after
// Runtime::stop gave up waiting (Config::blocking_shutdown_wait) touches only memory it co-owns.
#pragma once

#include "runtime/sched/runtime_impl.hpp"

#include <aem/blocking.hpp>
#include <aem/config.hpp>
#include <aem/metrics.hpp>

#include <sched.h>

#include <memory>
#include <system_error>

namespace aem::detail {

struct PoolState;

class BlockingPool final : public RuntimeService {
 public:
  // BlockingPool serves the `cores` cores of a runtime with `config`.
  BlockingPool(const Config& config, unsigned cores);
  ~BlockingPool() override;

  // of returns the pool of `runtime`.
  static BlockingPool& of(RuntimeImpl& runtime) noexcept { return *static_cast<BlockingPool*>(runtime.offload()); }

  // enqueue queues `call` (priority, core and where set) and takes the pool's reference to it.
  // Errors: errc::blocking_queue_full, errc::shutting_down, the errno of a thread that could
  // not start (only when the pool has none). Any thread.
  std::error_code enqueue(BlockingCall* call) noexcept;
  // withdraw removes `call` if it has not started (the pool's reference is dropped) and tells
  // whether it never runs: also true when a stop dropped it. Any thread.
  bool withdraw(BlockingCall* call) noexcept;
  // add_metrics fills in the pool's gauges for core `core`. Any thread.
  void add_metrics(CoreMetrics& metrics) const noexcept;

  std::error_code starting() noexcept override;
  void stop_requested() noexcept override;
  void cores_stopped() noexcept override;

 private:
  std::shared_ptr<PoolState> state_;
};

}  // namespace aem::detail
