// executor.hpp — how a registration's activations run.
#pragma once

#include <cstdint>

namespace aem {

// Executor says which capsule runs a registration's activations.
enum class Executor : std::uint8_t {
  // fresh_capsule: each activation runs in its own capsule from the core's pool, so activations
  // of one registration may overlap when a handler blocks.
  fresh_capsule,
  // keepalive: one capsule per registration runs its activations one after another, in order
  // (AEM's atomicity: never two handlers of the same registration at once). The capsule is
  // kept while activations are queued and goes back to the pool when none is, so an idle
  // registration holds no stack.
  keepalive,
};

}  // namespace aem
