// error.hpp — aem's error codes: one std::error_category for everything the runtime reports.
//
// Raw ring operations report -errno like cqe->res; the public API reports failures as a
// std::error_code, either aem's own category below or std::generic_category() for errno
// values passed through from the kernel.
#pragma once

#include <string>
#include <system_error>
#include <type_traits>

namespace aem {

// errc lists the failures that are aem's own (errno values use std::errc).
enum class errc : int {
  ok = 0,
  resource_limit,        // a configured limit (capsules, registrations, memory) is reached
  map_count_limit,       // mmap failed near vm.max_map_count: ~32k guarded stacks per process
  invalid_argument,      // a parameter is out of its documented range
  not_in_capsule,        // a capsule-only call was made from a plain thread
  no_such_core,          // core index >= Config::cores
  stale_event_id,        // the EventId's registration was cancelled (generation mismatch)
  foreign_event_id,      // the EventId does not belong to this runtime
  timed_out,             // the call's deadline passed before it could complete
  cancelled,             // the operation was cancelled before it completed
  shutting_down,         // the runtime (or the target core) is stopping
  not_running,           // the runtime has not been started
  already_running,       // start()/run() on a runtime that is running
  channel_closed,        // send/receive on a closed Channel
  would_block,           // a try_* call could not complete immediately
  out_of_memory,         // an arena or pool could not satisfy a request under the error policy
  double_free,           // a block was freed twice (arena debug mode)
  foreign_pointer,       // a pointer that no arena of this runtime handed out
  unsupported,           // the kernel or build lacks a feature this call needs
  end_of_stream,         // the peer closed the stream before the bytes a call needed arrived
  inline_handler_blocked,  // an inline handler (Executor::inline_handler) tried to suspend
  policy_limit,          // the runtime's or the event group's Policy refuses it (policy.hpp)
  line_too_long,         // no delimiter within the length a framed read allows (BufferedStream)
  not_numeric_address,   // SocketAddress::parse got a host name: it reads numeric addresses only
  blocking_queue_full,   // aem::blocking: every pool thread is busy and Config::blocking_queue_bound calls wait
};

namespace detail {

// ErrorCategory names aem::errc values and explains each one. Header-only, so that every layer
// of the library (the arena at the bottom too) can report aem::errc without linking upwards.
class ErrorCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "aem"; }
  std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::ok: return "success";
      case errc::resource_limit: return "a configured resource limit is reached";
      case errc::map_count_limit:
        return "cannot map another guarded stack: vm.max_map_count (default 65530) allows about 32k "
               "guarded stacks per process; raise it with sysctl or lower Config::max_capsules";
      case errc::invalid_argument: return "invalid argument";
      case errc::not_in_capsule: return "this call must be made from inside a capsule";
      case errc::no_such_core: return "no such core";
      case errc::stale_event_id: return "stale event id: the registration no longer exists";
      case errc::foreign_event_id: return "the event id does not belong to this runtime";
      case errc::timed_out: return "deadline passed";
      case errc::cancelled: return "operation cancelled";
      case errc::shutting_down: return "the runtime is shutting down";
      case errc::not_running: return "the runtime is not running";
      case errc::already_running: return "the runtime is already running";
      case errc::channel_closed: return "channel closed";
      case errc::would_block: return "operation would block";
      case errc::out_of_memory: return "out of memory";
      case errc::double_free: return "block freed twice";
      case errc::foreign_pointer: return "pointer does not belong to this allocator";
      case errc::unsupported: return "not supported by this kernel or build";
      case errc::end_of_stream: return "the peer closed the stream before the expected bytes arrived";
      case errc::inline_handler_blocked:
        return "an inline handler may not suspend (I/O wait, sleep, yield, join, lock, submit): it runs on the "
               "core's dispatcher; use Executor::keepalive or fresh_capsule for handlers that block";
      case errc::policy_limit:
        return "refused by an aem::Policy (Config::policy or the event group's): too many registrations or "
               "capsules, or a source type or executor it does not allow";
      case errc::line_too_long:
        return "no delimiter within the maximum length: the line or frame is too long (the bytes stay buffered)";
      case errc::not_numeric_address:
        return "not a numeric IP address: SocketAddress::parse reads numeric addresses only; resolve host names "
               "with aem::resolve";
      case errc::blocking_queue_full:
        return "aem::blocking refused the call: every pool thread is busy and Config::blocking_queue_bound calls "
               "already wait for one (raise Config::blocking_threads or the bound, or shed load)";
    }
    return "unknown aem error " + std::to_string(value);
  }
};

}  // namespace detail

// error_category returns the std::error_category of aem::errc values (name "aem"). One object
// per process: an inline function's static is shared by every translation unit.
inline const std::error_category& error_category() noexcept {
  static const detail::ErrorCategory category;
  return category;
}

// make_error_code wraps an aem::errc in a std::error_code.
inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

// errno_code wraps a positive errno value (or a negative cqe->res) in std::generic_category.
inline std::error_code errno_code(int err) noexcept {
  return {err < 0 ? -err : err, std::generic_category()};
}

namespace detail {

// StoredError keeps an error without constructing a std::error_code up front: a default
// std::error_code calls std::system_category() through the PLT, which costs more than the
// rest of a spawn's bookkeeping on the hot path.
class StoredError {
 public:
  StoredError() noexcept = default;
  StoredError& operator=(std::error_code e) noexcept {
    value_ = e.value();
    category_ = e ? &e.category() : nullptr;
    return *this;
  }
  explicit operator bool() const noexcept { return category_ != nullptr; }
  std::error_code get() const noexcept { return category_ != nullptr ? std::error_code(value_, *category_) : std::error_code(); }

 private:
  int value_ = 0;
  const std::error_category* category_ = nullptr;
};

}  // namespace detail
}  // namespace aem

template <>
struct std::is_error_code_enum<aem::errc> : std::true_type {};
