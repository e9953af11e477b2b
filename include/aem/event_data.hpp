// event_data.hpp — EventData: move-only ownership of one block of event data.
//
// An EventData comes from BuddyArena::allocate_data() and gives its block back to that arena
// when it is destroyed or reset(), from whichever thread that happens on: on the arena's owner
// thread the block goes straight back to the free lists, on any other thread it is queued on
// the arena's lock-free remote-free list and the owner reclaims it on its next allocation or
// drain_remote_frees().
//
// Example:
//   aem::Result<aem::EventData> d = arena.allocate_data(1500);
//   if (!d) return d.error();
//   std::memcpy(d->data(), packet, 1500);
//   channel.send(std::move(*d));  // the receiver's destructor frees it, on any thread
#pragma once

#include <aem/export.hpp>

#include <cstddef>
#include <span>
#include <utility>

namespace aem {

class BuddyArena;

// EventData owns one block of an arena (or, when the arena was exhausted under the fallback
// policy, one block of the general heap; the difference is invisible to the holder).
// The arena must outlive every EventData it handed out.
class AEM_EXPORT EventData {
 public:
  // EventData constructs an empty EventData that owns nothing (operator bool is false).
  EventData() noexcept = default;

  EventData(EventData&& other) noexcept
      : arena_(std::exchange(other.arena_, nullptr)),
        data_(std::exchange(other.data_, nullptr)),
        size_(std::exchange(other.size_, 0)),
        capacity_(std::exchange(other.capacity_, 0)) {}

  EventData& operator=(EventData&& other) noexcept {
    if (this != &other) {
      reset();
      arena_ = std::exchange(other.arena_, nullptr);
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
      capacity_ = std::exchange(other.capacity_, 0);
    }
    return *this;
  }

  EventData(const EventData&) = delete;
  EventData& operator=(const EventData&) = delete;

  // ~EventData returns the block to its arena (see reset()).
  ~EventData() {
    if (data_ != nullptr) reset();
  }

  // reset returns the block to the arena it came from and leaves this EventData empty.
  // May be called from any thread. A block the arena does not recognise (memory corruption,
  // a block already freed through release()) is reported through ArenaConfig::on_error and
  // one line to Config::log, and is otherwise left alone: reset never throws and never crashes.
  void reset() noexcept;

  // release gives up ownership without freeing: the caller must later pass the returned
  // pointer to arena()->deallocate(). Useful to hand a buffer to the kernel (io_uring) and take
  // it back later. Returns nullptr for an empty EventData.
  std::byte* release() noexcept {
    arena_ = nullptr;
    size_ = capacity_ = 0;
    return std::exchange(data_, nullptr);
  }

  // data returns the first byte of the block, nullptr when empty.
  std::byte* data() noexcept { return data_; }
  const std::byte* data() const noexcept { return data_; }

  // size returns the number of bytes requested from allocate_data().
  std::size_t size() const noexcept { return size_; }

  // capacity returns the usable size of the block: BuddyArena::block_size(size()), a power of
  // two >= size() and >= the arena's min_block, for every request up to the arena's capacity
  // (also when the fallback heap served it); size() itself for a request above the capacity.
  std::size_t capacity() const noexcept { return capacity_; }

  // bytes returns the requested bytes, [data(), data() + size()).
  std::span<std::byte> bytes() noexcept { return {data_, size_}; }
  std::span<const std::byte> bytes() const noexcept { return {data_, size_}; }

  // arena returns the arena the block belongs to, nullptr when empty.
  BuddyArena* arena() const noexcept { return arena_; }

  // operator bool tells whether this EventData owns a block. Every successful allocate_data()
  // result owns one, even for size 0.
  explicit operator bool() const noexcept { return data_ != nullptr; }

 private:
  friend class BuddyArena;
  EventData(BuddyArena* arena, std::byte* data, std::size_t size, std::size_t capacity) noexcept
      : arena_(arena), data_(data), size_(size), capacity_(capacity) {}

  BuddyArena* arena_ = nullptr;
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

}  // namespace aem
