// event_helpers.hpp — small helpers shared by the event-table tests.
#pragma once

#include <aem/capsule.hpp>
#include <aem/core_arena.hpp>
#include <aem/cross_core.hpp>
#include <aem/event_id.hpp>
#include <aem/event_data.hpp>
#include <aem/shared_event_data.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <cstddef>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace aem_test {

// wait_until sleeps the calling capsule in 1 ms steps until `done()` holds or `limit` passed;
// returns done(). Tests assert what it returns, never how long it took.
template <typename F>
bool wait_until(F&& done, std::chrono::milliseconds limit = std::chrono::seconds(20)) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!done() && std::chrono::steady_clock::now() < until) aem::this_capsule::sleep_for(std::chrono::milliseconds(1));
  return done();
}

// data_of copies `text` into a block of the calling core's arena.
inline aem::EventData data_of(std::string_view text) {
  auto data = aem::this_core::allocate_data(text.size());
  REQUIRE(data);
  if (!text.empty()) std::memcpy(data->data(), text.data(), text.size());
  return std::move(*data);
}

// Log collects what handlers on any core saw.
struct Log {
  std::mutex mutex;
  std::vector<std::string> entries;
  void add(std::string s) {
    std::lock_guard lock(mutex);
    entries.push_back(std::move(s));
  }
  std::vector<std::string> snapshot() {
    std::lock_guard lock(mutex);
    return entries;
  }
  std::size_t size() {
    std::lock_guard lock(mutex);
    return entries.size();
  }
};

// on_core registers on core `core` through `make` (by submit when it is not this one) and
// returns the id, checking that it belongs to that core.
template <typename F>
aem::EventId on_core(unsigned core, F&& make) {
  auto id = aem::submit(core, std::forward<F>(make));
  REQUIRE(id);
  REQUIRE(*id);
  CHECK((*id)->core() == core);
  return **id;
}

inline std::string text_of(const aem::EventData& d) { return std::string(reinterpret_cast<const char*>(d.data()), d.size()); }
inline std::string text_of(const aem::SharedEventData& d) {
  return std::string(reinterpret_cast<const char*>(d.data()), d.size());
}

}  // namespace aem_test
