// shared_event_data.cpp — the counted record behind SharedEventData. It lives in a block of
// the sharing core's arena (a fan-out allocates nothing from the general heap), and owns that
// block itself, so the last reference frees both wherever it is dropped.
#include "runtime/sched/core.hpp"

#include <aem/detail/invoke.hpp>
#include <aem/shared_event_data.hpp>

#include <cstring>
#include <new>
#include <system_error>

namespace aem {

struct SharedEventData::Record {
  EventData data;
  EventData self;  // the block this record lives in; empty when it came from the heap
  std::atomic<long> refs{1};
  explicit Record(EventData&& d) noexcept : data(std::move(d)) {}
};

Result<SharedEventData> SharedEventData::share(EventData&& data) {
  if (!data) return SharedEventData();
  detail::Core* core = detail::Core::current_core();
  if (core != nullptr) {
    Result<EventData> block = core->arena().allocate_data(sizeof(Record));
    if (!block) return block.error();
    EventData self = std::move(*block);
    auto* record = new (self.data()) Record(std::move(data));
    record->self = std::move(self);
    return SharedEventData(record);
  }
  auto* record = new (std::nothrow) Record(std::move(data));
  if (record == nullptr) return make_error_code(errc::out_of_memory);
  return SharedEventData(record);
}

void SharedEventData::retain() const noexcept {
  if (record_ != nullptr) record_->refs.fetch_add(1, std::memory_order_relaxed);
}

void SharedEventData::reset() noexcept {
  Record* record = std::exchange(record_, nullptr);
  if (record == nullptr || record->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  record->data.reset();
  if (!record->self) {
    delete record;
    return;
  }
  EventData self = std::move(record->self);  // the memory must outlive the destructor
  record->~Record();
  self.reset();
}

const std::byte* SharedEventData::data() const noexcept { return record_ != nullptr ? record_->data.data() : nullptr; }

std::size_t SharedEventData::size() const noexcept { return record_ != nullptr ? record_->data.size() : 0; }

long SharedEventData::use_count() const noexcept {
  return record_ != nullptr ? record_->refs.load(std::memory_order_relaxed) : 0;
}

namespace detail {

EventData copy_shared(const SharedEventData& shared) {
  Core* core = Core::current_core();
  if (core == nullptr) throw std::system_error(make_error_code(errc::not_in_capsule), "aem: copying shared event data");
  Result<EventData> copy = core->arena().allocate_data(shared.size());
  if (!copy) throw std::system_error(copy.error(), "aem: copying shared event data");
  if (shared.size() != 0) std::memcpy(copy->data(), shared.data(), shared.size());
  return std::move(*copy);
}

SharedEventData share_data(EventData&& data) {
  Result<SharedEventData> shared = SharedEventData::share(std::move(data));
  if (!shared) throw std::system_error(shared.error(), "aem: sharing event data");
  return std::move(*shared);
}

}  // namespace detail
}  // namespace aem
