// thread_ping_pong.hpp — the conventional baseline for a cross-core round trip: two
// std::threads handing a value back and forth under a mutex and a condition variable. Used by
// aem_bench (BM_ThreadPingPong) and by the demo, so both measure the same thing.
#pragma once

#include <condition_variable>
#include <mutex>
#include <thread>

namespace aem_bench {

// ThreadPingPong owns a worker thread that answers each request with request + 1.
//
// Example:
//   ThreadPingPong pp;
//   long v = pp.round_trip(41);  // 42, computed on the worker thread
class ThreadPingPong {
 public:
  ThreadPingPong() : worker_([this] { serve(); }) {}
  ~ThreadPingPong() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    worker_.join();
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
  void serve() {
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
  std::thread worker_;  // last: starts after the state above exists
};

}  // namespace aem_bench
