// deadline_heap.hpp — an intrusive binary min-heap of records ordered by their deadline. Each
// record knows its own slot, so removing one that finished early (it completed, or it was
// cancelled) is O(log n) as well as inserting and taking the earliest.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace aem::detail {

inline constexpr std::size_t kNotInHeap = ~std::size_t{0};

// DeadlineHeap keeps T* ordered by T::deadline_ns (std::int64_t, smaller is earlier); it owns
// T::heap_slot (std::size_t, kNotInHeap while the record is outside). Not thread-safe.
template <typename T>
class DeadlineHeap {
 public:
  bool empty() const noexcept { return slots_.empty(); }
  std::size_t size() const noexcept { return slots_.size(); }

  // top returns the record with the earliest deadline. Precondition: !empty().
  T* top() const noexcept { return slots_.front(); }

  // push inserts `record` (not in the heap). Returns false when memory for the slot ran out.
  bool push(T* record) noexcept {
    try {
      slots_.push_back(record);
    } catch (...) {
      return false;
    }
    record->heap_slot = slots_.size() - 1;
    sift_up(record->heap_slot);
    return true;
  }

  // erase removes `record` if it is in the heap; a record outside is left alone.
  void erase(T* record) noexcept {
    const std::size_t slot = record->heap_slot;
    if (slot == kNotInHeap) return;
    record->heap_slot = kNotInHeap;
    T* last = slots_.back();
    slots_.pop_back();
    if (last == record) return;
    place(slot, last);
    // The record moved into the hole may belong above or below it.
    sift_up(slot);
    sift_down(last->heap_slot);
  }

 private:
  void place(std::size_t slot, T* record) noexcept {
    slots_[slot] = record;
    record->heap_slot = slot;
  }

  void sift_up(std::size_t slot) noexcept {
    T* record = slots_[slot];
    while (slot > 0) {
      const std::size_t parent = (slot - 1) / 2;
      if (slots_[parent]->deadline_ns <= record->deadline_ns) break;
      place(slot, slots_[parent]);
      slot = parent;
    }
    place(slot, record);
  }

  void sift_down(std::size_t slot) noexcept {
    T* record = slots_[slot];
    const std::size_t n = slots_.size();
    for (;;) {
      std::size_t child = 2 * slot + 1;
      if (child >= n) break;
      if (child + 1 < n && slots_[child + 1]->deadline_ns < slots_[child]->deadline_ns) ++child;
      if (record->deadline_ns <= slots_[child]->deadline_ns) break;
      place(slot, slots_[child]);
      slot = child;
    }
    place(slot, record);
  }

  std::vector<T*> slots_;
};

}  // namespace aem::detail
