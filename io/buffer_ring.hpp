// buffer_ring.hpp — a provided-buffer ring: receive buffers the kernel (or the epoll backend)
// picks from, so an idle connection holds no buffer. The buffers are blocks of the core's buddy
// arena. A filled buffer is either copied out and put back at once (small receives), or handed
// to the handler as EventData and replaced by a fresh block; when the arena cannot give a
// replacement the slot stays empty until refill() finds memory — the ring runs dry, receives
// pause (-ENOBUFS), and resume when buffers return. Nothing is lost: unread bytes stay in the
// socket.
//
// The ring memory has the kernel's io_uring_buf_ring layout whichever backend uses it: the
// epoll backend consumes it from user space with take().
#pragma once

#include <aem/arena.hpp>
#include <aem/result.hpp>

#include <linux/io_uring.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace aem::detail {

class BufferRing {
 public:
  // create maps a ring of `entries` (a power of two, <= 32768) and fills it with buffers of
  // `buffer_size` bytes from `arena`. Errors: errc::invalid_argument, the errno of mmap,
  // errc::out_of_memory (the arena cannot give the buffers). Call on the arena's owner thread.
  static Result<std::unique_ptr<BufferRing>> create(std::uint16_t group, unsigned entries, std::size_t buffer_size,
                                                    BuddyArena& arena) noexcept;
  ~BufferRing();
  BufferRing(const BufferRing&) = delete;
  BufferRing& operator=(const BufferRing&) = delete;

  std::uint16_t group() const noexcept { return group_; }
  unsigned entries() const noexcept { return entries_; }
  std::size_t buffer_size() const noexcept { return buffer_size_; }
  io_uring_buf_ring* ring() noexcept { return ring_; }

  // buffer returns the memory of buffer `id` (valid until the buffer is recycled or handed over).
  std::byte* buffer(std::uint16_t id) const noexcept { return buffers_[id]; }

  // recycle puts buffer `id` back, available to the next receive.
  void recycle(std::uint16_t id) noexcept;

  // hand_over gives buffer `id`, holding `used` bytes, away as EventData and puts a fresh arena
  // block in its place (or leaves the slot empty for refill() when the arena has none).
  EventData hand_over(std::uint16_t id, std::size_t used) noexcept;

  // take_copy returns the `used` bytes of buffer `id` in a right-sized EventData and recycles
  // the buffer; when the arena cannot give that block the buffer itself is handed over.
  EventData take_copy(std::uint16_t id, std::size_t used) noexcept;

  // refill tries again to give empty slots a buffer. Returns whether it put any back.
  bool refill() noexcept;
  // missing is how many slots wait for a buffer.
  std::size_t missing() const noexcept { return empty_slots_.size(); }

  // peek names the next available buffer, as the kernel would pick it, and consume takes it
  // (epoll backend: a receive that found nothing to read leaves the buffer in place).
  bool peek(std::uint16_t& id) const noexcept;
  void consume() noexcept { ++head_; }
  // available is how many buffers wait in the ring for peek() (epoll backend only: the
  // kernel's consumer position is not ours to see).
  unsigned available() const noexcept { return static_cast<std::uint16_t>(tail_ - head_); }

 private:
  BufferRing() = default;
  // fresh_block takes one buffer from the arena (errc::out_of_memory when it has none, or
  // when a test injects that failure: faults::Site::buffer_ring).
  Result<void*> fresh_block() noexcept;
  void publish(std::uint16_t id) noexcept;
  // slot is the ring entry at `position`. The ring has the kernel's layout (linux/io_uring.h):
  // an array of io_uring_buf whose first entry's last 16 bits hold the tail. Not through the
  // header's `bufs` member: its flexible-array wrapper is an empty struct, which in C++ takes a
  // byte and moves the array.
  io_uring_buf& slot(std::uint16_t position) const noexcept {
    return reinterpret_cast<io_uring_buf*>(ring_)[position & (entries_ - 1)];
  }

  std::uint16_t group_ = 0;
  unsigned entries_ = 0;
  std::size_t buffer_size_ = 0;
  std::size_t ring_bytes_ = 0;
  io_uring_buf_ring* ring_ = nullptr;
  BuddyArena* arena_ = nullptr;
  std::vector<std::byte*> buffers_;
  std::vector<std::uint16_t> empty_slots_;
  std::uint16_t tail_ = 0;  // ours; the kernel reads it from the ring
  std::uint16_t head_ = 0;  // the epoll backend's consumer position
};

}  // namespace aem::detail
