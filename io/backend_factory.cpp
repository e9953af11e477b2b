#include "io/backend_factory.hpp"

#include "io/epoll_backend.hpp"
#include "io/uring_backend.hpp"

#include <cerrno>

namespace aem::detail {
namespace {

template <typename B>
Result<std::unique_ptr<Backend>> upcast(Result<std::unique_ptr<B>> created) noexcept {
  if (!created) return created.error();
  return std::unique_ptr<Backend>(std::move(*created));
}

}  // namespace

bool io_uring_refused(std::error_code error) noexcept {
  return error == std::errc::function_not_supported || error == std::errc::operation_not_permitted ||
         error == std::errc::permission_denied;
}

Result<std::unique_ptr<Backend>> create_backend(BackendKind kind, unsigned ring_entries) noexcept {
  switch (kind) {
    case BackendKind::epoll: return upcast(EpollBackend::create());
    case BackendKind::io_uring: return upcast(UringBackend::create(ring_entries));
    case BackendKind::automatic: break;
  }
  auto uring = UringBackend::create(ring_entries);
  if (uring || !io_uring_refused(uring.error())) return upcast(std::move(uring));
  return upcast(EpollBackend::create());
}

}  // namespace aem::detail
