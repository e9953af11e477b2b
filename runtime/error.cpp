#include <aem/error.hpp>

namespace aem {
namespace {

class AemCategory final : public std::error_category {
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
    }
    return "unknown aem error " + std::to_string(value);
  }
};

}  // namespace

const std::error_category& error_category() noexcept {
  static const AemCategory category;
  return category;
}

}  // namespace aem
