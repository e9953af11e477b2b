// unwind_helpers.hpp — for tests that check a capsule was unwound (its destructors ran) when the
// runtime stopped with the capsule still parked.
#pragma once

#include <atomic>

namespace aem_test {

// CountsDestruction counts its destructions: proof that the capsule holding it was unwound.
struct CountsDestruction {
  std::atomic<int>* counter;
  ~CountsDestruction() { counter->fetch_add(1); }
};

}  // namespace aem_test
