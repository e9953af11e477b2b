// bench_arena.cpp — BuddyArena against mimalloc and glibc malloc.
//
//   BM_*Pair        one iteration = allocate 64 B + free it (LIFO)
//   BM_*Scattered   one iteration = 4096 blocks of 64 B–4 KiB allocated (one byte written to
//                   each), then freed in a random order; counter ns_per_block = time / 4096
//   BM_*SameSize    one iteration = free the oldest of 1024 live equal-size blocks + allocate one
//   BM_*TailLatency one iteration = one operation (alternately free the oldest of 1024 live
//                   blocks of 64 B–4 KiB, allocate a new one), each timed with rdtsc; counters
//                   p50/p99/p999 in ns (timer overhead included, reported as timer_overhead_ns)
//
// Every arena benchmark builds its own default arena (64 MiB heap zone, pre-faulted) before the
// timed loop; the sizes and the free orders come from fixed seeds and are computed up front.
#include <aem/arena.hpp>

#include <benchmark/benchmark.h>
#include <mimalloc.h>
#include <x86intrin.h>

#include <algorithm>
#include <chrono>
#include <numeric>
#include <random>
#include <vector>

namespace {

struct ArenaAllocator {
  aem::BuddyArena arena;
  void* allocate(std::size_t n) { return *arena.allocate(n); }
  void free(void* p) { (void)arena.deallocate(p); }
};

struct MimallocAllocator {
  void* allocate(std::size_t n) { return mi_malloc(n); }
  void free(void* p) { mi_free(p); }
};

// The binary links libmimalloc, whose malloc and free interpose glibc's for the whole process,
// so std::malloc here would measure mimalloc a second time; glibc's own entry points are named.
extern "C" void* __libc_malloc(std::size_t);
extern "C" void __libc_free(void*);

struct MallocAllocator {
  void* allocate(std::size_t n) { return __libc_malloc(n); }
  void free(void* p) { __libc_free(p); }
};

template <typename A>
void run_pair(benchmark::State& state) {
  A a;
  for (auto _ : state) {
    void* p = a.allocate(64);
    benchmark::DoNotOptimize(p);
    a.free(p);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

constexpr std::size_t kScattered = 4096;

struct ScatteredPlan {
  std::vector<std::size_t> sizes;
  std::vector<std::size_t> free_order;
  ScatteredPlan() : sizes(kScattered), free_order(kScattered) {
    std::mt19937_64 rng(42);
    for (std::size_t& s : sizes) s = 64 + rng() % (4096 - 64 + 1);
    std::iota(free_order.begin(), free_order.end(), std::size_t{0});
    std::shuffle(free_order.begin(), free_order.end(), rng);
  }
};

template <typename A>
void run_scattered(benchmark::State& state) {
  static const ScatteredPlan plan;
  A a;
  std::vector<void*> blocks(kScattered);
  for (auto _ : state) {
    for (std::size_t i = 0; i < kScattered; ++i) {
      auto* p = static_cast<char*>(a.allocate(plan.sizes[i]));
      *p = 1;
      blocks[i] = p;
    }
    for (std::size_t i : plan.free_order) a.free(blocks[i]);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kScattered));
  state.counters["ns_per_block"] = benchmark::Counter(
      static_cast<double>(kScattered) * 1e-9, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

constexpr std::size_t kRing = 1024;

template <typename A>
void run_same_size(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  A a;
  std::vector<void*> ring(kRing);
  for (void*& p : ring) p = a.allocate(size);
  std::size_t oldest = 0;
  for (auto _ : state) {
    a.free(ring[oldest]);
    void* p = a.allocate(size);
    benchmark::DoNotOptimize(p);
    ring[oldest] = p;
    oldest = (oldest + 1) % kRing;
  }
  for (void* p : ring) a.free(p);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

double tsc_ns_per_cycle() {
  static const double ratio = [] {
    const auto t0 = std::chrono::steady_clock::now();
    const unsigned long long c0 = __rdtsc();
    while (std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(20)) {
    }
    const unsigned long long c1 = __rdtsc();
    const auto ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
    return ns / static_cast<double>(c1 - c0);
  }();
  return ratio;
}

inline unsigned long long timestamp() {
  _mm_lfence();  // keep the timed operation between the two reads
  const unsigned long long t = __rdtsc();
  _mm_lfence();
  return t;
}

double percentile(std::vector<unsigned long long>& v, double q) {
  const auto k = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return static_cast<double>(v[k]);
}

template <typename A>
void run_tail_latency(benchmark::State& state) {
  const std::size_t ops = static_cast<std::size_t>(state.max_iterations);
  std::vector<std::size_t> sizes(ops / 2 + 1);
  std::mt19937_64 rng(7);
  for (std::size_t& s : sizes) s = 64 + rng() % (4096 - 64 + 1);
  std::vector<unsigned long long> samples(ops);
  std::vector<unsigned long long> overhead(1 << 16);
  for (auto& o : overhead) {
    const unsigned long long t0 = timestamp();
    o = timestamp() - t0;
  }
  A a;
  std::vector<void*> ring(kRing);
  for (void*& p : ring) p = a.allocate(64 + rng() % 4033);
  std::size_t oldest = 0, op = 0, next_size = 0;
  for (auto _ : state) {
    const unsigned long long t0 = timestamp();
    if ((op & 1) == 0) {
      a.free(ring[oldest]);
    } else {
      ring[oldest] = a.allocate(sizes[next_size++]);
    }
    const unsigned long long t1 = timestamp();
    samples[op] = t1 - t0;
    if ((op & 1) != 0) oldest = (oldest + 1) % kRing;
    ++op;
  }
  for (void* p : ring) a.free(p);
  samples.resize(op);
  const double ns = tsc_ns_per_cycle();
  const double p50 = percentile(samples, 0.50) * ns;
  const double p99 = percentile(samples, 0.99) * ns;
  const double p999 = percentile(samples, 0.999) * ns;
  state.counters["p50_ns"] = p50;
  state.counters["p99_ns"] = p99;
  state.counters["p999_ns"] = p999;
  state.counters["p999_over_p50"] = p999 / p50;
  state.counters["timer_overhead_ns"] = percentile(overhead, 0.50) * ns;
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

void BM_ArenaPair(benchmark::State& s) { run_pair<ArenaAllocator>(s); }
void BM_MimallocPair(benchmark::State& s) { run_pair<MimallocAllocator>(s); }
void BM_MallocPair(benchmark::State& s) { run_pair<MallocAllocator>(s); }
void BM_ArenaScattered(benchmark::State& s) { run_scattered<ArenaAllocator>(s); }
void BM_MimallocScattered(benchmark::State& s) { run_scattered<MimallocAllocator>(s); }
void BM_MallocScattered(benchmark::State& s) { run_scattered<MallocAllocator>(s); }
void BM_ArenaSameSize(benchmark::State& s) { run_same_size<ArenaAllocator>(s); }
void BM_MimallocSameSize(benchmark::State& s) { run_same_size<MimallocAllocator>(s); }
void BM_ArenaTailLatency(benchmark::State& s) { run_tail_latency<ArenaAllocator>(s); }
void BM_MimallocTailLatency(benchmark::State& s) { run_tail_latency<MimallocAllocator>(s); }

}  // namespace

BENCHMARK(BM_ArenaPair);
BENCHMARK(BM_MimallocPair);
BENCHMARK(BM_MallocPair);
BENCHMARK(BM_ArenaScattered);
BENCHMARK(BM_MimallocScattered);
BENCHMARK(BM_MallocScattered);
BENCHMARK(BM_ArenaSameSize)->Arg(64)->Arg(1500);
BENCHMARK(BM_MimallocSameSize)->Arg(64)->Arg(1500);
BENCHMARK(BM_ArenaTailLatency)->Iterations(1 << 21);
BENCHMARK(BM_MimallocTailLatency)->Iterations(1 << 21);
