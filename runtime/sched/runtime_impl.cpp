// runtime_impl.cpp — the cores' threads: start-up, pinning, the stop handshake, injection.
#include "runtime/sched/runtime_impl.hpp"
#include "alloc/task_memory.hpp"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace aem::detail {
namespace {

std::atomic<std::uint8_t> g_next_tag{1};

std::uint8_t next_tag() noexcept {
  std::uint8_t tag = g_next_tag.fetch_add(1, std::memory_order_relaxed);
  if (tag == 0) tag = g_next_tag.fetch_add(1, std::memory_order_relaxed);  // 0 never names a runtime
  return tag;
}

unsigned resolve_cores(unsigned requested) noexcept {
  if (requested != 0) return requested;
  cpu_set_t set;
  if (::sched_getaffinity(0, sizeof set, &set) == 0) return static_cast<unsigned>(CPU_COUNT(&set));
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : n;
}

}  // namespace

RuntimeImpl::RuntimeImpl(Config config, std::unique_ptr<EventLayers> layers)
    : config_(config), event_layers_(std::move(layers)), tag_(next_tag()) {
  // The CPUs we may use, read once: pinned threads would otherwise see only their own.
  if (::sched_getaffinity(0, sizeof process_affinity_, &process_affinity_) != 0) {
    CPU_ZERO(&process_affinity_);
    for (unsigned cpu = 0; cpu < std::max(1u, std::thread::hardware_concurrency()); ++cpu) CPU_SET(cpu, &process_affinity_);
  }
  const unsigned n = resolve_cores(config_.cores);
  config_.cores = n;
  cores_.reserve(n);
  for (unsigned i = 0; i < n; ++i) cores_.push_back(std::make_unique<Core>(*this, i));
}

RuntimeImpl::~RuntimeImpl() {
  request_stop();
  join();
  event_layers_->release();  // what it keeps in the cores' arenas goes before the cores
}

std::int64_t RuntimeImpl::live_total() const noexcept {
  std::int64_t total = 0;
  for (const auto& core : cores_) total += core->outstanding();
  return total;
}

void RuntimeImpl::notify_all() noexcept {
  for (auto& core : cores_) core->notify();
}

void RuntimeImpl::note_core_stopped() noexcept {
  if (stopped_cores_.fetch_add(1, std::memory_order_acq_rel) + 1 == cores_.size()) notify_all();
}

void RuntimeImpl::pin(unsigned index) noexcept {
  if (!config_.pin_threads) return;
  const cpu_set_t& allowed = process_affinity_;
  const int count = CPU_COUNT(&allowed);
  if (count <= 0) return;
  int wanted = static_cast<int>(index % static_cast<unsigned>(count));
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &allowed)) continue;
    if (wanted-- == 0) {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpu, &one);
      ::pthread_setaffinity_np(::pthread_self(), sizeof one, &one);
      return;
    }
  }
}

void RuntimeImpl::thread_main(unsigned index, TaskState* root) noexcept {
  Core& core = *cores_[index];
  const LogScope log_route(config_.log, index);
  // The caller of run() is pinned like every core while it is one, then gets its own
  // affinity back: an unpinned core 0 would share a CPU with a spinning core.
  cpu_set_t caller_affinity;
  const bool restore = root != nullptr && index == 0 && ::sched_getaffinity(0, sizeof caller_affinity, &caller_affinity) == 0;
  pin(index);
  Result<void> init = core.init();
  if (init && index == 0) backend_name_.store(core.backend().name(), std::memory_order_release);
  {
    std::unique_lock lock(phase_mutex_);
    if (!init && !init_error_) init_error_ = init.error();
    if (++initialised_ == cores_.size() && !init_error_) go_ = true;
    phase_cv_.notify_all();
    phase_cv_.wait(lock, [&] { return initialised_ == cores_.size(); });
  }
  if (go_) {
    if (root != nullptr && index == 0) {
      auto capsule = core.acquire_capsule();
      if (capsule) {
        root->runner = &core;
        core.count_task();
        core.launch(*capsule, root);
      } else {
        root->launch_error = capsule.error();
        request_stop();
      }
    }
    core.loop();
  }
  {
    // Nobody may tear down while another core might still post to it.
    std::unique_lock lock(phase_mutex_);
    ++finished_loops_;
    phase_cv_.notify_all();
    phase_cv_.wait(lock, [&] { return finished_loops_ == cores_.size(); });
  }
  core.teardown();
  if (restore) ::pthread_setaffinity_np(::pthread_self(), sizeof caller_affinity, &caller_affinity);
}

Result<void> RuntimeImpl::start(TaskState* root) {
  const LogScope log_route(config_.log);
  std::unique_lock lifecycle(lifecycle_mutex_);
  if (Core::current_core() != nullptr) return make_error_code(errc::already_running);
  if (running_.exchange(true)) return make_error_code(errc::already_running);
  if (offload_) {
    if (std::error_code refused = offload_->starting()) {
      running_.store(false);
      return refused;
    }
  }
  if (diagnostics_) {
    if (std::error_code refused = diagnostics_->starting()) {
      if (offload_) offload_->cores_stopped();
      running_.store(false);
      return refused;
    }
  }
  stopping_.store(false);
  stopped_cores_.store(0);
  root_ = root;
  initialised_ = finished_loops_ = 0;
  init_error_.clear();
  go_ = false;

  const unsigned first_thread = root != nullptr ? 1 : 0;
  try {
    for (unsigned i = first_thread; i < cores_.size(); ++i) threads_.emplace_back([this, i, root] { thread_main(i, root); });
  } catch (const std::system_error& e) {
    // Cores without a thread count as initialised (with an error) and finished, so the
    // threads that did start give up and exit.
    std::unique_lock lock(phase_mutex_);
    init_error_ = e.code();
    const auto missing = static_cast<unsigned>(cores_.size() - first_thread - threads_.size());
    initialised_ += missing + first_thread;
    finished_loops_ += missing + first_thread;
    phase_cv_.notify_all();
    lock.unlock();
    lifecycle.unlock();
    join();
    return init_error_;
  }

  if (root != nullptr) {
    thread_main(0, root);  // this thread is core 0 until every core has stopped
    lifecycle.unlock();
    join();
    if (init_error_) return init_error_;
    if (root->launch_error) return root->launch_error.get();
    return {};
  }

  std::unique_lock lock(phase_mutex_);
  phase_cv_.wait(lock, [&] { return initialised_ == cores_.size(); });
  if (init_error_) {
    lock.unlock();
    lifecycle.unlock();
    join();
    return init_error_;
  }
  return {};
}

void RuntimeImpl::request_stop() noexcept {
  if (!running_.load(std::memory_order_acquire)) return;
  stopping_.store(true, std::memory_order_seq_cst);
  if (offload_) offload_->stop_requested();
  if (diagnostics_) diagnostics_->stop_requested();
  notify_all();
}

void RuntimeImpl::join() noexcept {
  const LogScope log_route(config_.log);
  std::lock_guard guard(join_mutex_);
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
  if (offload_) offload_->cores_stopped();  // waits a while for blocking calls still running
  if (diagnostics_) diagnostics_->cores_stopped();
  running_.store(false, std::memory_order_release);
}

void RuntimeImpl::inject(unsigned index, TaskState* task) noexcept {
  auto fail = [&](errc e) {
    task->launch_error = make_error_code(e);
    task->run(task);
    task->dispose(task);
    task_free(task);
  };
  task->home = TaskHome::heap;
  task->flags.store(TaskState::kReleased, std::memory_order_relaxed);
  if (index >= cores_.size()) return fail(errc::no_such_core);
  if (!running()) return fail(errc::not_running);
  Core& core = *cores_[index];
  core.count_incoming();
  if (stopping()) {
    // Undo, and let a core waiting for zero outstanding tasks see it.
    core.uncount_incoming();
    notify_all();
    return fail(errc::shutting_down);
  }
  task->runner = &core;
  task->mail.owner = task;
  task->mail.kind = kMailSpawn;
  core.post(&task->mail);
}

}  // namespace aem::detail
