#include <aem/arena.hpp>
#include <aem/event_data.hpp>

namespace aem {

void EventData::reset() noexcept {
  if (data_ == nullptr) return;
  BuddyArena* arena = std::exchange(arena_, nullptr);
  std::byte* data = std::exchange(data_, nullptr);
  const std::size_t capacity = std::exchange(capacity_, 0);
  size_ = 0;
  if (arena != nullptr) arena->release_block(data, capacity);
}

}  // namespace aem
