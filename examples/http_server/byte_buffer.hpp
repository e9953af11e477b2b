// byte_buffer.hpp — ByteBuffer: bytes in one block of the core's arena, filled at the back and
// drained from the front.
#pragma once

#include <aem/core_arena.hpp>
#include <aem/event_data.hpp>

#include <cstddef>
#include <cstring>
#include <span>
#include <string_view>

namespace http {

class ByteBuffer {
 public:
  // reserve makes sure a block of at least `capacity` bytes is there, keeping the content.
  // Returns false when the arena cannot provide it. Call from a capsule.
  bool reserve(std::size_t capacity) {
    if (capacity <= this->capacity()) return true;
    auto block = aem::this_core::allocate_data(capacity);
    if (!block) return false;
    if (length_ > 0) std::memcpy(block->data(), block_.data(), length_);
    block_ = std::move(*block);
    return true;
  }
  // release gives the block back (the content is dropped).
  void release() noexcept {
    if (block_) block_.reset();
    length_ = 0;
  }

  char* data() noexcept { return reinterpret_cast<char*>(block_.data()); }
  std::size_t size() const noexcept { return length_; }
  bool empty() const noexcept { return length_ == 0; }
  std::size_t capacity() const noexcept { return block_ ? block_.capacity() : 0; }
  std::string_view view() const noexcept { return {reinterpret_cast<const char*>(block_.data()), length_}; }
  // space returns the free bytes after the content.
  std::span<char> space() noexcept { return {data() + length_, capacity() - length_}; }
  // commit adds `n` bytes written into space(). Precondition: n <= space().size().
  void commit(std::size_t n) noexcept { length_ += n; }
  // append copies `text` after the content. Precondition: text.size() <= space().size().
  void append(std::string_view text) noexcept {
    // An empty text may come from a buffer with no block (an empty body): memcpy from or to
    // a null pointer is undefined even for 0 bytes.
    if (text.empty()) return;
    std::memcpy(data() + length_, text.data(), text.size());
    length_ += text.size();
  }
  // drop_front removes the first `n` bytes, moving the rest to the front.
  void drop_front(std::size_t n) noexcept {
    if (n == 0) return;
    length_ -= n;
    if (length_ > 0) std::memmove(data(), data() + n, length_);
  }
  void clear() noexcept { length_ = 0; }

 private:
  aem::EventData block_;
  std::size_t length_ = 0;
};

}  // namespace http
