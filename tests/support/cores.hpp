// cores.hpp — run a test body for each core count that matters (1, 2 and 4: oversubscribed on
// a 2-CPU machine).
#pragma once

#include <aem/config.hpp>

#include <doctest/doctest.h>

#include <initializer_list>

namespace aem_test {

inline constexpr unsigned kCoreCounts[] = {1, 2, 4};

// config_for returns a small, test-friendly Config for `cores` cores.
inline aem::Config config_for(unsigned cores) {
  aem::Config config;
  config.cores = cores;
  config.capsules_per_core = 16;
  config.idle_spin = std::chrono::microseconds(0);
  return config;
}

}  // namespace aem_test

// Each core count becomes a doctest SUBCASE, so a failure names the count.
#define AEM_FOR_EACH_CORE_COUNT(cores)                                   \
  for (unsigned cores : aem_test::kCoreCounts)                           \
    if (bool entered_ = false; false) {                                  \
    } else                                                               \
      SUBCASE(("cores=" + std::to_string(cores)).c_str())                \
        for (; !entered_; entered_ = true)
