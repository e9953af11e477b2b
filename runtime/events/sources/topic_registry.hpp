// topic_registry.hpp — the event table's side of topics (sources/topic.cpp): a cancelled
// subscription leaves the runtime's topic registry.
#pragma once

#include <aem/event_id.hpp>

namespace aem::detail {

class RuntimeImpl;

// topic_cancelled takes the subscription `id` off the runtime's topics, so that no publish
// counts or reaches it any more. Called by the event table when it cancels a topic
// registration, on that registration's core.
void topic_cancelled(RuntimeImpl& runtime, EventId id) noexcept;

}  // namespace aem::detail
