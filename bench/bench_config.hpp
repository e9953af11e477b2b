// bench_config.hpp — what every aem_bench runtime shares.
#pragma once

namespace aem_bench {

// without_stall_reports turns the stall detector off: a benchmark's capsule runs its timed loop
// for a second or more without letting its core turn, which the detector would rightly report
// (and interrupt to take a backtrace) in the middle of the measurement. The detector's cost on
// the hot path (a relaxed store per loop turn and per switch) stays in. A template, so that the
// benchmarks still build against a tree without Config::stall_threshold, for same-run
// comparisons with a baseline build.
template <typename Config>
void without_stall_reports(Config& config) {
  if constexpr (requires { config.stall_threshold; }) config.stall_threshold = {};
}

}  // namespace aem_bench
