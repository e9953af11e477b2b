// blocking.hpp — aem::blocking: run a function that blocks its thread (a database driver,
// getaddrinfo, a slow disk, compression) on the runtime's pool of OS threads, suspending only
// the calling capsule while the core goes on running the others.
//
// Example:
//   aem::Result<std::string> page = aem::blocking([&] { return legacy_client.fetch(url); },
//                                                 {.deadline = 2s});
//   if (!page) return page.error();  // errc::timed_out, errc::blocking_queue_full, ...
#pragma once

#include <aem/detail/waiter.hpp>
#include <aem/error.hpp>
#include <aem/export.hpp>
#include <aem/priority.hpp>
#include <aem/result.hpp>
#include <aem/time.hpp>

#include <atomic>
#include <cstdint>
#include <exception>
#include <new>
#include <optional>
#include <type_traits>
#include <utility>
#if __has_include(<source_location>)
#include <source_location>
#endif

namespace aem {

// SourceLocation is std::source_location where the standard library has it. Clang 14 with
// libstdc++ lacks it (no __builtin_source_location); there a stand-in with the same accessors
// is built on the compiler's location builtins.
#if defined(__cpp_lib_source_location)
using SourceLocation = std::source_location;
#else
class SourceLocation {
 public:
  static constexpr SourceLocation current(const char* file = __builtin_FILE(), const char* function = __builtin_FUNCTION(),
                                          unsigned line = __builtin_LINE()) noexcept {
    SourceLocation here;
    here.file_ = file;
    here.function_ = function;
    here.line_ = line;
    return here;
  }
  constexpr SourceLocation() noexcept = default;
  constexpr const char* file_name() const noexcept { return file_; }
  constexpr const char* function_name() const noexcept { return function_; }
  constexpr unsigned line() const noexcept { return line_; }
  constexpr unsigned column() const noexcept { return 0; }

 private:
  const char* file_ = "";
  const char* function_ = "";
  unsigned line_ = 0;
};
#endif

// BlockingOptions are the settings of one aem::blocking call.
struct BlockingOptions {
  // deadline is when the capsule stops waiting, with errc::timed_out. A call still queued then
  // is removed and never runs; one already running is left to finish on its pool thread, and
  // its result (or exception) is destroyed there, unseen.
  Deadline deadline{};
};

namespace detail {

// BlockingCall is one aem::blocking call, type-erased: the pool (in the library) queues it by
// the caller's priority, runs it on one of its threads and wakes the caller. The fields below
// `run` belong to the library.
class BlockingCall {
 public:
  BlockingCall() = default;  // binds `waiter` to the calling capsule
  BlockingCall(const BlockingCall&) = delete;
  BlockingCall& operator=(const BlockingCall&) = delete;
  virtual ~BlockingCall() = default;
  // run calls the function and keeps its outcome (value or exception). On a pool thread.
  virtual void run() noexcept = 0;

  enum class State : std::uint8_t { queued, running, done, dropped };
  Waiter waiter;                       // ends the caller's wait: completion, deadline or shutdown
  std::atomic<int> references{1};      // the caller's, and the pool's while it holds the call
  std::atomic<State> state{State::queued};
  std::atomic<std::uint8_t> late{0};   // a caller waiting past its deadline for a running call
  Priority priority = Priority::normal;
  unsigned core = 0;
  BlockingCall* prev = nullptr;        // the pool's queue, then its list of running calls
  BlockingCall* next = nullptr;
  TimePoint queued_at{};
  TimePoint started_at{};
  // The call site, as plain fields: SourceLocation is a different type under different
  // compilers, and this layout is shared with the compiled library.
  struct CallSite {
    const char* file = "";
    const char* function = "";
    unsigned line = 0;
  } where;
};

// release drops one reference to `call`; the last one destroys it (and a result nobody took).
inline void release(BlockingCall* call) noexcept {
  if (call->references.fetch_sub(1, std::memory_order_acq_rel) == 1) delete call;
}

// blocking_refusal tells why the calling thread may not make a blocking call now: not a
// capsule (errc::not_in_capsule), an inline handler (errc::inline_handler_blocked, counted), or
// the runtime is stopping (errc::shutting_down). Empty when it may.
AEM_EXPORT std::error_code blocking_refusal() noexcept;

// BlockingWait says what a deadline or a shutdown does to a call that is already running:
// `abandon` returns at once and drops its result later; `finish` waits for it (for work on the
// caller's memory, such as a file read into its buffer) and returns its result.
enum class BlockingWait : std::uint8_t { abandon, finish };

// run_blocking hands `call` (with the caller's reference) to the calling capsule's runtime pool
// and suspends until it is done. Empty error: done, and the caller still holds its reference.
// Otherwise the reference is given up already. Call from a capsule, after blocking_refusal.
AEM_EXPORT std::error_code run_blocking(BlockingCall* call, Deadline deadline, BlockingWait wait) noexcept;

// BlockingCallOf holds the function and then its outcome.
template <typename Fn, typename T>
class BlockingCallOf final : public BlockingCall {
 public:
  template <typename F>
  explicit BlockingCallOf(F&& fn) : fn_(std::in_place, std::forward<F>(fn)) {}

  void run() noexcept override {
    try {
      if constexpr (std::is_void_v<T>) {
        (*fn_)();
      } else {
        value_.emplace((*fn_)());
      }
    } catch (...) {
      error_ = std::current_exception();
    }
    fn_.reset();  // what the function captured goes now, on the pool thread
  }

  // take returns the value, or rethrows the function's exception.
  Result<T> take() {
    if (error_) std::rethrow_exception(error_);
    if constexpr (std::is_void_v<T>) {
      return {};
    } else {
      return Result<T>(std::move(*value_));
    }
  }

 private:
  struct Nothing {};
  std::optional<Fn> fn_;
  std::optional<std::conditional_t<std::is_void_v<T>, Nothing, T>> value_;
  std::exception_ptr error_;
};

// call_blocking is aem::blocking's body, also used inside the library (`wait`: see BlockingWait).
template <typename Fn>
Result<std::invoke_result_t<Fn&>> call_blocking(Fn&& fn, Deadline deadline, SourceLocation where,
                                                BlockingWait wait) {
  using T = std::invoke_result_t<Fn&>;
  using Call = BlockingCallOf<std::decay_t<Fn>, T>;
  if (std::error_code refused = blocking_refusal()) return refused;
  auto* call = new (std::nothrow) Call(std::forward<Fn>(fn));
  if (call == nullptr) return make_error_code(errc::out_of_memory);
  call->where = {where.file_name(), where.function_name(), static_cast<unsigned>(where.line())};
  if (std::error_code failed = run_blocking(call, deadline, wait)) return failed;
  struct Releaser {
    Call* call;
    ~Releaser() { release(call); }
  } releaser{call};
  return call->take();
}

}  // namespace detail

// blocking runs fn() on the runtime's pool of OS threads and suspends only the calling capsule
// until it returns; the core runs its other capsules meanwhile. Use it for code that blocks its
// thread and cannot be made asynchronous. fn's value comes back in the Result (Result<void>
// for a void fn; move-only values work); an exception thrown by fn is rethrown here. fn runs
// on a plain thread: the capsule-only API returns errc::not_in_capsule there.
//
// Queued calls start in the order of their capsules' priorities (this_capsule::priority, FIFO
// within one); the pool starts threads on demand up to Config::blocking_threads, and an idle
// one exits after Config::blocking_keep_alive. fn is destroyed on the pool thread after it ran.
//
// Call from a capsule. Errors:
//   errc::timed_out            options.deadline passed. A call that had not started is removed
//                              and never runs; a running one finishes on its thread and its
//                              result or exception is destroyed there.
//   errc::blocking_queue_full  every pool thread is busy and Config::blocking_queue_bound calls
//                              wait already: refused at once, fn never runs.
//   errc::shutting_down        the runtime is stopping: a queued call is dropped, never run; a
//                              running one is waited for by Runtime::stop up to
//                              Config::blocking_shutdown_wait, then reported to Config::log (with
//                              `where`) and left to finish.
//   errc::not_in_capsule       called from a plain thread (fn does not run).
//   errc::inline_handler_blocked  called from an inline handler (counted; fn does not run).
//   errc::out_of_memory        the call's record could not be allocated.
//   an errno (std::generic_category) if the pool could not start a thread and has none.
template <typename Fn>
Result<std::invoke_result_t<Fn&>> blocking(Fn&& fn, BlockingOptions options = {},
                                           SourceLocation where = SourceLocation::current()) {
  static_assert(!std::is_reference_v<std::invoke_result_t<Fn&>>,
                "aem::blocking: fn must return a value, not a reference (it is moved across threads)");
  return detail::call_blocking(std::forward<Fn>(fn), options.deadline, where, detail::BlockingWait::abandon);
}

}  // namespace aem
