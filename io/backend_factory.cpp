#include "io/backend_factory.hpp"

#include "io/epoll/epoll_backend.hpp"
#include "io/uring/uring_backend.hpp"

#include <bit>
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

Result<void> validate_ring_sizes(RingSizes sizes) noexcept {
  const bool sq_ok = sizes.sq != 0 && sizes.sq <= kMaxRingEntries && std::has_single_bit(sizes.sq);
  const bool cq_ok = sizes.cq == 0 || (sizes.cq >= sizes.sq && sizes.cq <= kMaxCqEntries && std::has_single_bit(sizes.cq));
  if (!sq_ok || !cq_ok) return make_error_code(errc::invalid_argument);
  return {};
}

Result<std::unique_ptr<Backend>> create_backend(BackendKind kind, RingSizes sizes) noexcept {
  if (Result<void> valid = validate_ring_sizes(sizes); !valid) return valid.error();
  switch (kind) {
    case BackendKind::epoll: return upcast(EpollBackend::create());
    case BackendKind::io_uring: return upcast(UringBackend::create(sizes));
    case BackendKind::automatic: break;
  }
  auto uring = UringBackend::create(sizes);
  if (uring || !io_uring_refused(uring.error())) return upcast(std::move(uring));
  return upcast(EpollBackend::create());
}

}  // namespace aem::detail
