// blocking_pool.cpp — the queue and the threads of the pool behind aem::blocking.
#include "runtime/offload/blocking_pool.hpp"

#include "base/log.hpp"
#include "base/probes.hpp"

#include <pthread.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace aem::detail {

// CallList is an intrusive FIFO of calls (a queue level, or the running calls).
class CallList {
 public:
  bool empty() const noexcept { return head_ == nullptr; }
  BlockingCall* front() const noexcept { return head_; }
  void push_back(BlockingCall* call) noexcept {
    call->next = nullptr;
    call->prev = tail_;
    if (tail_ != nullptr) tail_->next = call;
    else head_ = call;
    tail_ = call;
  }
  void remove(BlockingCall* call) noexcept {
    if (call->prev != nullptr) call->prev->next = call->next;
    else head_ = call->next;
    if (call->next != nullptr) call->next->prev = call->prev;
    else tail_ = call->prev;
    call->prev = call->next = nullptr;
  }

 private:
  BlockingCall* head_ = nullptr;
  BlockingCall* tail_ = nullptr;
};

// IdleWorker is a thread waiting for a call, on its own stack: the pool signals the most
// recently idle one (LIFO), so under light load the same few threads serve and the rest time
// out and exit. An idle thread sleeps at once, unlike an idle core: the cores are pinned to
// every CPU the process has, so a polling pool thread would take its time from a core.
struct IdleWorker {
  std::condition_variable wake;
  IdleWorker* below = nullptr;
  bool signalled = false;
};

// PerCore holds the pool's gauges for the calls of one core.
struct PerCore {
  std::uint64_t queued = 0;
  std::uint64_t busy = 0;
};

struct PoolState {
  PoolState(const Config& config, unsigned cores)
      : max_threads(config.blocking_threads),
        keep_alive(std::chrono::duration_cast<Duration>(config.blocking_keep_alive)),
        queue_bound(config.blocking_queue_bound),
        shutdown_wait(std::chrono::duration_cast<Duration>(config.blocking_shutdown_wait)),
        log(config.log),
        per_core(cores) {
    affinity = pool_cpus(config, cores);
  }

  // pool_cpus are the CPUs the pool's threads run on: the process's CPUs that no core is pinned
  // to, or all of them where the cores take every one. A pool thread that the kernel puts on a
  // core's CPU waits for that core (which may be polling for the pool's answer); a thread
  // started by a pinned core would even inherit that one CPU.
  static cpu_set_t pool_cpus(const Config& config, unsigned cores) noexcept {
    cpu_set_t all;
    CPU_ZERO(&all);
    if (::sched_getaffinity(0, sizeof all, &all) != 0) return all;  // empty: left as inherited
    const auto count = static_cast<unsigned>(CPU_COUNT(&all));
    if (!config.pin_threads || cores >= count) return all;
    cpu_set_t free = all;
    unsigned pinned = 0;  // cores take the first CPUs of the process's mask (RuntimeImpl::pin)
    for (int cpu = 0; cpu < CPU_SETSIZE && pinned < cores; ++cpu) {
      if (!CPU_ISSET(cpu, &all)) continue;
      CPU_CLR(cpu, &free);
      ++pinned;
    }
    return free;
  }

  const unsigned max_threads;
  const Duration keep_alive;
  const std::size_t queue_bound;
  const Duration shutdown_wait;
  const LogSink log;  // a copy: a thread left running after the stop may outlive the runtime
  cpu_set_t affinity;  // pool_cpus

  std::mutex mutex;
  std::condition_variable drained;  // threads == 0, for the stop
  CallList levels[kPriorityLevels];
  CallList running;
  IdleWorker* idle = nullptr;
  std::size_t queued = 0;
  std::size_t busy = 0;
  unsigned threads = 0;
  unsigned starting = 0;  // threads signalled or started and not yet back at the queue
  bool stopping = false;
  bool awaiting_stop = false;  // a stop began and cores_stopped has not waited for it yet
  std::vector<PerCore> per_core;
  std::atomic<unsigned> thread_gauge{0};  // `threads`, for metrics readers without the lock
};

namespace {

BlockingCall* pop_first(PoolState& pool) noexcept {
  for (unsigned level = kPriorityLevels; level-- > 0;) {
    if (BlockingCall* call = pool.levels[level].front()) {
      pool.levels[level].remove(call);
      return call;
    }
  }
  return nullptr;
}

// finish hands the outcome of `call` to its caller, or leaves it to whoever lets go last.
void finish(BlockingCall* call) noexcept {
  call->state.store(BlockingCall::State::done, std::memory_order_release);
  if (!call->waiter.notify()) {
    // The caller gave up (deadline, shutdown). If it waits on for the result anyway
    // (BlockingWait::finish), wake it; else it will see `late` set and not wait.
    if (call->late.exchange(2, std::memory_order_acq_rel) == 1) Core::wake(static_cast<CapsuleControl*>(call->waiter.capsule));
  }
  release(call);
}

// serve runs calls until the thread has waited keep_alive without one, or the pool stops.
void serve(const std::shared_ptr<PoolState>& shared) noexcept {
  PoolState& pool = *shared;
  if (CPU_COUNT(&pool.affinity) > 0) ::pthread_setaffinity_np(::pthread_self(), sizeof pool.affinity, &pool.affinity);
  ::pthread_setname_np(::pthread_self(), "aem-blocking");
  const LogScope log_route(pool.log);
  std::unique_lock lock(pool.mutex);
  --pool.starting;
  for (;;) {
    if (pool.stopping) break;
    if (BlockingCall* call = pop_first(pool)) {
      --pool.queued;
      ++pool.busy;
      PerCore& counts = pool.per_core[call->core];
      --counts.queued;
      ++counts.busy;
      call->started_at = Clock::now();
      call->state.store(BlockingCall::State::running, std::memory_order_relaxed);
      pool.running.push_back(call);
      lock.unlock();
      AEM_PROBE_BLOCKING_START(call, call->where.function, call->where.file, call->where.line);
      call->run();
      AEM_PROBE_BLOCKING_END(call);
      lock.lock();
      pool.running.remove(call);
      --pool.busy;
      --counts.busy;
      lock.unlock();
      finish(call);
      lock.lock();
      continue;
    }
    IdleWorker self;
    self.below = pool.idle;
    pool.idle = &self;
    const TimePoint until = Clock::now() + pool.keep_alive;
    while (!self.signalled && !pool.stopping) {
      if (self.wake.wait_until(lock, until) == std::cv_status::timeout) break;
    }
    if (self.signalled) {
      --pool.starting;
      continue;
    }
    for (IdleWorker** link = &pool.idle; *link != nullptr; link = &(*link)->below) {
      if (*link == &self) {
        *link = self.below;
        break;
      }
    }
    if (!pool.stopping && pool.queued > pool.starting) continue;  // work came as the wait ended
    break;
  }
  --pool.threads;
  pool.thread_gauge.store(pool.threads, std::memory_order_relaxed);
  if (pool.threads == 0) pool.drained.notify_all();
}

// signal_idle wakes every idle thread (the pool is stopping: they exit). Under the lock.
void signal_idle(PoolState& pool) noexcept {
  for (IdleWorker* worker = pool.idle; worker != nullptr;) {
    IdleWorker* below = worker->below;
    worker->signalled = true;
    ++pool.starting;
    worker->wake.notify_one();
    worker = below;
  }
  pool.idle = nullptr;
}

// start_thread starts one more thread (counted as starting). Returns the errno on failure.
int start_thread(const std::shared_ptr<PoolState>& shared) noexcept {
  PoolState& pool = *shared;
  ++pool.threads;
  ++pool.starting;
  try {
    std::thread([shared] { serve(shared); }).detach();
  } catch (const std::system_error& e) {
    --pool.threads;
    --pool.starting;
    return e.code().value() != 0 ? e.code().value() : EAGAIN;
  }
  pool.thread_gauge.store(pool.threads, std::memory_order_relaxed);
  return 0;
}

}  // namespace

BlockingPool::BlockingPool(const Config& config, unsigned cores) : state_(std::make_shared<PoolState>(config, cores)) {}

BlockingPool::~BlockingPool() {
  // The runtime was stopped and joined: the threads still running a call go on alone, and
  // exit after it; idle ones (none after a stop) exit now.
  PoolState& pool = *state_;
  std::lock_guard lock(pool.mutex);
  pool.stopping = true;
  signal_idle(pool);
}

std::error_code BlockingPool::enqueue(BlockingCall* call) noexcept {
  PoolState& pool = *state_;
  std::unique_lock lock(pool.mutex);
  if (pool.stopping) return make_error_code(errc::shutting_down);
  // Calls beyond those a thread is about to take wait in the queue; the bound caps them.
  const bool thread_free = pool.idle != nullptr || pool.threads < pool.max_threads;
  if (!thread_free && pool.queued - std::min<std::size_t>(pool.queued, pool.starting) >= pool.queue_bound) {
    return make_error_code(errc::blocking_queue_full);
  }
  if (pool.idle != nullptr) {
    IdleWorker* worker = pool.idle;
    pool.idle = worker->below;
    worker->signalled = true;
    ++pool.starting;
    worker->wake.notify_one();  // under the lock: the worker's stack frame may be gone after it
  } else if (pool.threads < pool.max_threads) {
    if (const int error = start_thread(state_); error != 0 && pool.threads == 0) return errno_code(error);
  }
  call->references.fetch_add(1, std::memory_order_relaxed);
  call->state.store(BlockingCall::State::queued, std::memory_order_relaxed);
  call->queued_at = Clock::now();
  pool.levels[static_cast<unsigned>(call->priority) % kPriorityLevels].push_back(call);
  ++pool.queued;
  ++pool.per_core[call->core].queued;
  return {};
}

bool BlockingPool::withdraw(BlockingCall* call) noexcept {
  PoolState& pool = *state_;
  {
    std::lock_guard lock(pool.mutex);
    const BlockingCall::State state = call->state.load(std::memory_order_relaxed);
    if (state != BlockingCall::State::queued) return state == BlockingCall::State::dropped;
    pool.levels[static_cast<unsigned>(call->priority) % kPriorityLevels].remove(call);
    --pool.queued;
    --pool.per_core[call->core].queued;
    call->state.store(BlockingCall::State::dropped, std::memory_order_relaxed);
  }
  release(call);  // the pool's reference; the caller still holds its own
  return true;
}

void BlockingPool::add_metrics(CoreMetrics& metrics) const noexcept {
  PoolState& pool = *state_;
  std::lock_guard lock(pool.mutex);
  if (metrics.core < pool.per_core.size()) {
    metrics.blocking_queued = pool.per_core[metrics.core].queued;
    metrics.blocking_busy = pool.per_core[metrics.core].busy;
  }
  metrics.blocking_threads = pool.threads;
}

std::error_code BlockingPool::starting() noexcept {
  PoolState& pool = *state_;
  if (pool.max_threads == 0 || pool.keep_alive < Duration::zero() || pool.shutdown_wait < Duration::zero()) {
    return make_error_code(errc::invalid_argument);
  }
  std::lock_guard lock(pool.mutex);
  pool.stopping = false;  // threads still finishing a call of the last run serve this one too
  return {};
}

void BlockingPool::stop_requested() noexcept {
  PoolState& pool = *state_;
  BlockingCall* dropped = nullptr;  // linked through `next`: they have left the queue
  {
    std::lock_guard lock(pool.mutex);
    if (pool.stopping) return;
    pool.stopping = true;
    pool.awaiting_stop = true;
    signal_idle(pool);
    while (BlockingCall* call = pop_first(pool)) {
      --pool.per_core[call->core].queued;
      call->state.store(BlockingCall::State::dropped, std::memory_order_relaxed);
      call->next = dropped;
      dropped = call;
    }
    pool.queued = 0;
  }
  // Their callers end their waits with errc::shutting_down: the shutdown wakes them, or this
  // does (a caller that is unwinding is not interrupted by the shutdown).
  while (BlockingCall* call = dropped) {
    dropped = call->next;
    call->next = nullptr;
    call->waiter.notify();
    release(call);
  }
}

void BlockingPool::cores_stopped() noexcept {
  PoolState& pool = *state_;
  std::unique_lock lock(pool.mutex);
  if (!pool.awaiting_stop) return;  // never started, or already reported
  pool.awaiting_stop = false;
  pool.drained.wait_for(lock, pool.shutdown_wait, [&] { return pool.threads == 0; });
  const TimePoint now = Clock::now();
  for (BlockingCall* call = pool.running.front(); call != nullptr; call = call->next) {
    const double seconds = std::chrono::duration<double>(now - call->started_at).count();
    log(LogLevel::warning,
        "Runtime::stop: a blocking call from %s:%u (%s) is still running after %.3f s; its thread is left to "
        "finish it and drop the result",
        call->where.file, call->where.line, call->where.function, seconds);
  }
}

}  // namespace aem::detail
