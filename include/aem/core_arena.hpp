// core_arena.hpp — the calling core's buddy arena: where a core's event data lives.
#pragma once

#include <aem/arena.hpp>
#include <aem/event_data.hpp>
#include <aem/export.hpp>
#include <aem/result.hpp>

#include <cstddef>

namespace aem::this_core {

// arena returns the BuddyArena of the core the caller runs on (configured by Config::arena),
// or nullptr on a thread that is not a core. Call from a capsule (or a handler running on a
// core). The arena lives as long as the Runtime: every EventData taken from it must be
// destroyed before the Runtime is. Blocks freed on other cores or threads travel back through
// the arena's remote-free list, which the core drains on every turn of its loop.
//
// Example:
//   aem::Result<aem::EventData> d = aem::this_core::allocate_data(1500);
//   if (!d) return d.error();
//   aem::post(1, [data = std::move(*d)] { consume(data.bytes()); });  // freed on core 1
AEM_EXPORT BuddyArena* arena() noexcept;

// allocate_data takes `size` bytes from the calling core's arena (BuddyArena::allocate_data).
// Errors: errc::not_in_capsule on a thread that is not a core; otherwise as allocate_data.
AEM_EXPORT Result<EventData> allocate_data(std::size_t size);

}  // namespace aem::this_core
