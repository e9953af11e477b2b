#include "io/buffer_ring.hpp"

#include <aem/detail/fault_injection.hpp>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <new>
#include <sys/mman.h>

static_assert(offsetof(io_uring_buf_ring, tail) == 14, "the tail shares the first entry's last 16 bits");

namespace aem::detail {

Result<std::unique_ptr<BufferRing>> BufferRing::create(std::uint16_t group, unsigned entries, std::size_t buffer_size,
                                                       BuddyArena& arena) noexcept {
  if (entries == 0 || entries > 32768 || (entries & (entries - 1)) != 0 || buffer_size == 0 ||
      buffer_size > (std::size_t{1} << 31)) {
    return make_error_code(errc::invalid_argument);
  }
  std::unique_ptr<BufferRing> ring(new (std::nothrow) BufferRing());
  if (!ring) return make_error_code(errc::out_of_memory);
  ring->group_ = group;
  ring->entries_ = entries;
  ring->buffer_size_ = buffer_size;
  ring->arena_ = &arena;
  // The kernel wants the ring page-aligned: a mapping of its own.
  ring->ring_bytes_ = entries * sizeof(io_uring_buf);
  void* memory = ::mmap(nullptr, ring->ring_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) return errno_code(errno);
  ring->ring_ = static_cast<io_uring_buf_ring*>(memory);  // zeroed: the kernel's tail starts at 0
  try {
    ring->buffers_.assign(entries, nullptr);
    ring->empty_slots_.reserve(entries);
  } catch (const std::bad_alloc&) {
    return make_error_code(errc::out_of_memory);
  }
  for (unsigned id = 0; id < entries; ++id) {
    Result<void*> block = ring->fresh_block();
    if (!block) return block.error();
    ring->buffers_[id] = static_cast<std::byte*>(*block);
    ring->publish(static_cast<std::uint16_t>(id));
  }
  return ring;
}

BufferRing::~BufferRing() {
  for (std::byte* buffer : buffers_) {
    if (buffer != nullptr) (void)arena_->deallocate(buffer);
  }
  if (ring_ != nullptr) ::munmap(ring_, ring_bytes_);
}

Result<void*> BufferRing::fresh_block() noexcept {
  if (faults::hit(faults::Site::buffer_ring)) return make_error_code(errc::out_of_memory);
  return arena_->allocate(buffer_size_);
}

void BufferRing::publish(std::uint16_t id) noexcept {
  io_uring_buf& entry = slot(tail_);
  entry.addr = reinterpret_cast<std::uint64_t>(buffers_[id]);
  entry.len = static_cast<std::uint32_t>(buffer_size_);
  entry.bid = id;
  ++tail_;
  __atomic_store_n(&ring_->tail, tail_, __ATOMIC_RELEASE);  // the kernel reads the tail
}

void BufferRing::recycle(std::uint16_t id) noexcept { publish(id); }

EventData BufferRing::hand_over(std::uint16_t id, std::size_t used) noexcept {
  EventData data = arena_->adopt(buffers_[id], buffer_size_, used);
  buffers_[id] = nullptr;
  Result<void*> fresh = fresh_block();
  if (fresh) {
    buffers_[id] = static_cast<std::byte*>(*fresh);
    publish(id);
  } else {
    empty_slots_.push_back(id);  // reserved at create(): no allocation here
  }
  return data;
}

EventData BufferRing::take_copy(std::uint16_t id, std::size_t used) noexcept {
  Result<EventData> copy = arena_->allocate_data(used);
  if (!copy) return hand_over(id, used);
  std::memcpy(copy->data(), buffers_[id], used);
  recycle(id);
  return std::move(*copy);
}

bool BufferRing::refill() noexcept {
  const std::size_t before = empty_slots_.size();
  while (!empty_slots_.empty()) {
    Result<void*> fresh = fresh_block();
    if (!fresh) break;
    const std::uint16_t id = empty_slots_.back();
    empty_slots_.pop_back();
    buffers_[id] = static_cast<std::byte*>(*fresh);
    publish(id);
  }
  return empty_slots_.size() < before;
}

bool BufferRing::peek(std::uint16_t& id) const noexcept {
  if (head_ == tail_) return false;
  id = slot(head_).bid;
  return true;
}

}  // namespace aem::detail
