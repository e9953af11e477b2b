// error_event.hpp — subsystem errors as events: aem::on_error hears what the runtime's
// subsystems report on every core (arena memory pressure, accept back-offs when fds run out,
// completion-queue overflows) through an ordinary registration, controlled by aem::ctl.
#pragma once

#include <aem/detail/registration.hpp>
#include <aem/event.hpp>
#include <aem/event_id.hpp>
#include <aem/executor.hpp>
#include <aem/export.hpp>
#include <aem/priority.hpp>
#include <aem/result.hpp>

#include <cstdint>
#include <functional>
#include <system_error>
#include <type_traits>
#include <utility>

namespace aem {

// Subsystem names the part of the runtime that reports an error.
enum class Subsystem : std::uint8_t {
  arena,             // a core's event-data arena could not serve a request from its region
  accept,            // an accepting socket paused: out of fds or memory (EMFILE, ENFILE, ENOMEM, ENOBUFS)
  completion_queue,  // completions had to wait in the kernel for room in a core's io_uring CQ
  capsule_pool,      // a core could not map more capsule stacks (vm.max_map_count or memory: ENOMEM)
  // (a new subsystem goes last: the runtime sizes its per-subsystem counts by capsule_pool)
};

// SubsystemError is one error a subsystem reported.
struct SubsystemError {
  Subsystem subsystem = Subsystem::arena;
  // code: std::generic_category errno: ENOMEM (arena exhausted, or no stack for the capsule
  // pool), EFBIG (arena: a request larger than the region), the accept error, EOVERFLOW
  // (completion queue).
  std::error_code code;
  const char* detail = "";  // a static, human-readable sentence
  unsigned core = 0;        // the core the error happened on
  // count: errors of this subsystem that core has reported so far, this one included (per run
  // of the core's thread for accept; arena and completion queue count over the runtime's life).
  // Errors raised faster than they are carried to a core are coalesced there: a gap in count
  // says how many were passed over.
  std::uint64_t count = 0;
};

// ErrorEventOptions say how subsystem-error activations run.
struct ErrorEventOptions {
  Priority priority = Priority::normal;
  Executor exec = Executor::fresh_capsule;
  std::uint32_t queue_bound = kDefaultQueueBound;
  // on_lost hears, in order with the activations, of errors dropped at the queue bound (errors
  // cannot wait); without it the loss is reported to Config::log. Optional.
  std::function<void(Lost)> on_lost{};
  // site is where the registration is made, named by Runtime::dump. Leave it: the default
  // captures the line that makes the options (the registering call when they are written there).
  SpawnSite site = SpawnSite::here();
};

namespace detail {

// arm_error starts a reserved subsystem-error registration on the calling core (and its
// reader, on the first one). Errors: errc::out_of_memory, the errno of eventfd(2).
AEM_EXPORT Result<EventId> arm_error(const RegistrationSlot& slot, const HandlerOps* ops) noexcept;
// decode_subsystem_error unpacks the error a payload carries (on the registration's core).
AEM_EXPORT SubsystemError decode_subsystem_error(const Payload& payload) noexcept;

struct InvokeSubsystemError {
  static constexpr HandlerSignature signature = HandlerSignature::subsystem_error;
  template <typename H>
  static constexpr bool accepts = std::is_invocable_v<H&, const SubsystemError&> || std::is_invocable_v<H&>;
  template <typename H>
  void operator()(H& handler, Payload& payload) const {
    if constexpr (std::is_invocable_v<H&, const SubsystemError&>) {
      const SubsystemError error = decode_subsystem_error(payload);
      std::invoke(handler, error);
    } else {
      std::invoke(handler);
    }
  }
};

}  // namespace detail

// on_error registers `handler` for the errors the runtime's subsystems report on any core:
// `handler(const SubsystemError&)` or `handler()`. It lives on the calling core until
// cancelled; the errors of every core reach it, each core's in the order they happened, at the
// registration's priority and by its executor. aem::ctl works on it (disable queues errors up
// to the queue bound; beyond it they are dropped and reported through on_lost). Raising an
// error never blocks the core that raises it nor allocates there: errors travel through a
// bounded per-core buffer and are coalesced when it is full (see SubsystemError::count).
// Without any registration the runtime behaves as before (the arena's on_pressure callback,
// the accept registration's on_error, the metrics counters all work either way).
// ctl(id).replace_handler is not supported for these registrations (errc::invalid_argument).
// Call from a capsule or an inline handler.
// Errors: errc::not_in_capsule, errc::invalid_argument (bad priority, executor, queue bound),
// errc::resource_limit, errc::out_of_memory, errc::shutting_down, the errno of eventfd(2).
//
// Example:
//   auto id = aem::on_error([](const aem::SubsystemError& e) {
//     log("core {}: {} ({}), {} so far", e.core, e.detail, e.code.message(), e.count);
//   }, {.priority = aem::Priority::high});
template <typename F>
Result<EventId> on_error(F&& handler, ErrorEventOptions options = {}) {
  static_assert(detail::InvokeSubsystemError::accepts<std::decay_t<F>>,
                "an error handler is called with const aem::SubsystemError& or nothing");
  detail::RegistrationOptions reg{options.priority, options.exec, options.queue_bound, std::move(options.on_lost), {},
                                  SourceType::error};
  reg.site = options.site.record();
  return detail::register_handler<detail::InvokeSubsystemError>(
      std::forward<F>(handler), reg,
      [](const detail::RegistrationSlot& slot, const detail::HandlerOps* ops) { return detail::arm_error(slot, ops); });
}

}  // namespace aem
