// thread_ping_pong.hpp — the conventional baseline for a cross-core round trip: two
// std::threads handing a value back and forth under a mutex and a condition variable. Used by
// aem_bench (BM_ThreadPingPong) and by the demo, so both measure the same thing.
//
// The two threads are pinned to two CPUs, as aem's two cores are: unpinned, the scheduler
// often puts them on one CPU, where a hand-over is a cheap local switch instead of a
// cross-CPU wake-up, and the baseline would measure a different thing from aem's round trip.
#pragma once

#include <condition_variable>
#include <mutex>
#include <thread>

#include <pthread.h>
#include <sched.h>

namespace aem_bench {

// ThreadPingPong owns a worker thread that answers each request with request + 1. The
// constructing thread, which must be the one calling round_trip, is pinned to the first CPU it
// may use and the worker to the second (with fewer than two, neither is pinned); the
// destructor gives the constructing thread its CPU mask back.
//
// Example:
//   ThreadPingPong pp;
//   long v = pp.round_trip(41);  // 42, computed on the worker thread
class ThreadPingPong {
 public:
  ThreadPingPong() : restore_(pin_caller()), worker_([this] { serve(); }) {}
  ~ThreadPingPong() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    worker_.join();
    if (restore_) ::pthread_setaffinity_np(::pthread_self(), sizeof caller_mask_, &caller_mask_);
  }
  ThreadPingPong(const ThreadPingPong&) = delete;
  ThreadPingPong& operator=(const ThreadPingPong&) = delete;

  // round_trip sends `value` to the worker and waits for its answer.
  long round_trip(long value) {
    std::unique_lock lock(mutex_);
    request_ = value;
    has_request_ = true;
    cv_.notify_all();
    cv_.wait(lock, [&] { return has_reply_; });
    has_reply_ = false;
    return reply_;
  }

 private:
  // pin_caller pins the calling thread to its first allowed CPU and picks the worker's (the
  // second); false when fewer than two CPUs are allowed or the mask cannot be read.
  bool pin_caller() noexcept {
    if (::pthread_getaffinity_np(::pthread_self(), sizeof caller_mask_, &caller_mask_) != 0) return false;
    int found = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE && found < 2; ++cpu) {
      if (CPU_ISSET(cpu, &caller_mask_)) (found++ == 0 ? caller_cpu_ : worker_cpu_) = cpu;
    }
    if (found < 2) return false;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(caller_cpu_, &one);
    return ::pthread_setaffinity_np(::pthread_self(), sizeof one, &one) == 0;
  }

  void serve() {
    if (restore_) {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(worker_cpu_, &one);
      ::pthread_setaffinity_np(::pthread_self(), sizeof one, &one);
    }
    std::unique_lock lock(mutex_);
    for (;;) {
      cv_.wait(lock, [&] { return has_request_ || stop_; });
      if (stop_) return;
      has_request_ = false;
      reply_ = request_ + 1;
      has_reply_ = true;
      cv_.notify_all();
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  long request_ = 0;
  long reply_ = 0;
  bool has_request_ = false;
  bool has_reply_ = false;
  bool stop_ = false;
  cpu_set_t caller_mask_{};
  int caller_cpu_ = -1;
  int worker_cpu_ = -1;
  bool restore_ = false;  // the caller was pinned: the destructor restores caller_mask_
  std::thread worker_;  // last: starts after the state above exists
};

}  // namespace aem_bench
