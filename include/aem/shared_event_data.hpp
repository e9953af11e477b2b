// shared_event_data.hpp — SharedEventData: one block of event data shared, by reference count,
// by every registration an activation fans out to (several on_data registrations of one stream
// see the bytes of one receive, not copies of them).
#pragma once

#include <aem/event_data.hpp>
#include <aem/export.hpp>
#include <aem/result.hpp>

#include <atomic>
#include <cstddef>
#include <span>
#include <utility>

namespace aem {

// SharedEventData is a counted, read-only reference to one EventData. Copies share the block;
// the last one to go frees it (into its arena, from any thread). A handler of an on_data or
// on_event registration may take SharedEventData instead of EventData: then a fanned-out
// activation costs one shared record, however many registrations it reaches.
//
// Example:
//   aem::on_data(stream, [log](aem::SharedEventData bytes) { log->append(bytes.bytes()); });
//   aem::on_data(stream, [](aem::SharedEventData bytes) { parse(bytes.bytes()); });  // same bytes
class AEM_EXPORT SharedEventData {
 public:
  // SharedEventData constructs an empty handle (operator bool is false).
  SharedEventData() noexcept = default;
  SharedEventData(const SharedEventData& other) noexcept : record_(other.record_) { retain(); }
  SharedEventData(SharedEventData&& other) noexcept : record_(std::exchange(other.record_, nullptr)) {}
  SharedEventData& operator=(const SharedEventData& other) noexcept {
    if (record_ != other.record_) {
      reset();
      record_ = other.record_;
      retain();
    }
    return *this;
  }
  SharedEventData& operator=(SharedEventData&& other) noexcept {
    if (this != &other) {
      reset();
      record_ = std::exchange(other.record_, nullptr);
    }
    return *this;
  }
  ~SharedEventData() {
    if (record_ != nullptr) reset();  // inline: most payloads never share
  }

  // share wraps `data` in a shared record taken from the calling core's arena (or the heap on
  // a thread that is not a core). Errors: errc::out_of_memory. An empty `data` gives an empty
  // handle.
  static Result<SharedEventData> share(EventData&& data);

  // reset drops this reference (the last one frees the block) and leaves the handle empty. Any
  // thread.
  void reset() noexcept;

  const std::byte* data() const noexcept;
  std::size_t size() const noexcept;
  std::span<const std::byte> bytes() const noexcept { return {data(), size()}; }
  // use_count returns how many handles share the block (0 when empty). Racy across threads:
  // for diagnostics and tests.
  long use_count() const noexcept;
  explicit operator bool() const noexcept { return record_ != nullptr; }

  struct Record;  // the block's EventData, the count, and the memory holding them

 private:
  explicit SharedEventData(Record* record) noexcept : record_(record) {}
  void retain() const noexcept;
  Record* record_ = nullptr;
};

}  // namespace aem
