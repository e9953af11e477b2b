// runtime.cpp — aem::Runtime: the scheduler's cores with the event layer installed on them.
#include "runtime/diag/diagnostics.hpp"
#include "runtime/events/runtime_events.hpp"
#include "runtime/offload/blocking_pool.hpp"
#include "runtime/sched/runtime_impl.hpp"

#include <aem/runtime.hpp>

#include <cstdlib>
#include <string_view>

namespace aem {

namespace {

Config apply_environment(Config config) {
  if (const char* backend = std::getenv("AEM_BACKEND"); backend != nullptr && config.backend == BackendKind::automatic) {
    if (std::string_view(backend) == "io_uring") config.backend = BackendKind::io_uring;
    if (std::string_view(backend) == "epoll") config.backend = BackendKind::epoll;
  }
  return config;
}

}  // namespace

Runtime::Runtime(Config config) : impl_(std::make_unique<detail::RuntimeImpl>(apply_environment(config),
                                                                      detail::make_runtime_events(config))) {
  impl_->install_offload(std::make_unique<detail::BlockingPool>(impl_->config(), impl_->core_count()));
  impl_->install_diagnostics(std::make_unique<detail::Diagnostics>(*impl_));
}

Runtime::~Runtime() { stop(); }

Result<void> Runtime::run_root(detail::TaskState* root) {
  if (detail::Core::current_core() != nullptr) return make_error_code(errc::already_running);
  return impl_->start(root);
}

Result<void> Runtime::start() { return impl_->start(nullptr); }

void Runtime::stop() {
  impl_->request_stop();
  detail::Core* core = detail::Core::current_core();
  if (core != nullptr && &core->runtime() == impl_.get()) return;  // a capsule cannot join its own thread
  impl_->join();
}

void Runtime::inject(unsigned core, detail::TaskState* task) noexcept { impl_->inject(core, task); }

unsigned Runtime::cores() const noexcept { return impl_->core_count(); }
const Config& Runtime::config() const noexcept { return impl_->config(); }
// Not running once a stop is requested: from then on submit refuses work (shutting_down), even
// while the cores still wind down and until a plain thread's stop() or the destructor joins them.
bool Runtime::running() const noexcept { return impl_->running() && !impl_->stopping(); }
std::string_view Runtime::backend_name() const noexcept { return impl_->backend_name(); }

void Runtime::dump(const DumpSink& sink, std::chrono::milliseconds per_core) const {
  static_cast<detail::Diagnostics*>(impl_->diagnostics())->dump(sink, per_core);
}

}  // namespace aem
