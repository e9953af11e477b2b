#include <aem/core_arena.hpp>

#include "runtime/sched/core.hpp"

namespace aem::this_core {

BuddyArena* arena() noexcept {
  detail::Core* core = detail::Core::current_core();
  return core != nullptr ? &core->arena() : nullptr;
}

Result<EventData> allocate_data(std::size_t size) {
  BuddyArena* owner = arena();
  if (owner == nullptr) return make_error_code(errc::not_in_capsule);
  return owner->allocate_data(size);
}

}  // namespace aem::this_core
