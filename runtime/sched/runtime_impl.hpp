// runtime_impl.hpp — the state behind aem::Runtime: the cores, their threads, and the
// start-up and shutdown handshakes between them.
#pragma once

#include "base/log.hpp"
#include "runtime/sched/core.hpp"
#include "runtime/sched/event_layer.hpp"

#include <aem/config.hpp>
#include <aem/result.hpp>

#include <sched.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace aem::detail {

// RuntimeService is a runtime-wide part above the cores that follows the runtime's starts and
// stops (the pool of threads behind aem::blocking). The Runtime installs it; the cores never
// call it.
class RuntimeService {
 public:
  virtual ~RuntimeService() = default;
  // starting checks the config and readies the service; an error fails the start. Plain thread.
  virtual std::error_code starting() noexcept = 0;
  // stop_requested: the runtime begins to stop. Any thread (a core's too); must not block.
  virtual void stop_requested() noexcept = 0;
  // cores_stopped: every core has left its loop. Plain thread; may wait.
  virtual void cores_stopped() noexcept = 0;
};

class RuntimeImpl {
 public:
  // RuntimeImpl makes the cores of `config`; `layers` makes their event layers.
  RuntimeImpl(Config config, std::unique_ptr<EventLayers> layers);
  ~RuntimeImpl();

  const Config& config() const noexcept { return config_; }
  unsigned core_count() const noexcept { return static_cast<unsigned>(cores_.size()); }
  Core& core(unsigned i) noexcept { return *cores_[i]; }
  std::uint8_t tag() const noexcept { return tag_; }
  // event_layers is the layer above the cores (registrations, policy counts, topics).
  EventLayers& event_layers() noexcept { return *event_layers_; }
  // offload is the pool of threads for blocking calls (runtime/offload), installed once by the
  // Runtime before it starts; nullptr before.
  RuntimeService* offload() noexcept { return offload_.get(); }
  void install_offload(std::unique_ptr<RuntimeService> offload) noexcept { offload_ = std::move(offload); }
  // diagnostics is the stall watchdog and the capsule dump (runtime/diag), installed once by the
  // Runtime before it starts; nullptr before.
  RuntimeService* diagnostics() noexcept { return diagnostics_.get(); }
  void install_diagnostics(std::unique_ptr<RuntimeService> diagnostics) noexcept { diagnostics_ = std::move(diagnostics); }

  bool running() const noexcept { return running_.load(std::memory_order_acquire); }
  bool stopping() const noexcept { return stopping_.load(std::memory_order_seq_cst); }

  // start starts the cores; with `root`, the calling thread becomes core 0 and runs `root`
  // there until the runtime has stopped.
  Result<void> start(TaskState* root);
  // request_stop asks every core to shut down. Any thread.
  void request_stop() noexcept;
  // join waits for the background threads after a stop. Plain thread only.
  void join() noexcept;
  // live_total sums the tasks accepted by all cores and not finished.
  std::int64_t live_total() const noexcept;
  // notify_all wakes every sleeping core so it re-reads the runtime's state. Any thread.
  void notify_all() noexcept;
  // note_core_stopped records that a core has seen the stop and cancelled its timers; until
  // every core has, a timer may still start a task, so no core may leave its loop.
  void note_core_stopped() noexcept;
  bool all_cores_stopped() const noexcept { return stopped_cores_.load(std::memory_order_acquire) == cores_.size(); }
  // inject hands a task to `core` from any thread (Runtime::submit).
  void inject(unsigned core, TaskState* task) noexcept;
  bool is_root(const TaskState* task) const noexcept { return task == root_; }
  // backend_name is the name of core 0's backend, once it has been created ("" before).
  const char* backend_name() const noexcept { return backend_name_.load(std::memory_order_acquire); }

 private:
  void thread_main(unsigned index, TaskState* root) noexcept;
  void pin(unsigned index) noexcept;

  Config config_;
  FallbackLogClaim log_fallback_{config_.log};  // after config_, before the cores: their teardown may log
  cpu_set_t process_affinity_;
  std::unique_ptr<EventLayers> event_layers_;  // before the cores: their layers give counts back when destroyed
  std::unique_ptr<RuntimeService> offload_;
  std::unique_ptr<RuntimeService> diagnostics_;
  std::vector<std::unique_ptr<Core>> cores_;
  std::vector<std::thread> threads_;
  std::uint8_t tag_;
  TaskState* root_ = nullptr;
  std::atomic<bool> running_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<unsigned> stopped_cores_{0};
  std::atomic<const char*> backend_name_{""};

  // Start-up: every core initialises, then all run; if one fails, none does.
  std::mutex phase_mutex_;
  std::condition_variable phase_cv_;
  unsigned initialised_ = 0;
  unsigned finished_loops_ = 0;
  std::error_code init_error_;
  bool go_ = false;
  std::mutex lifecycle_mutex_;
  std::mutex join_mutex_;
};

}  // namespace aem::detail
