// consumer_program.hpp — what both consumer programs run: a small aem program (a runtime, a
// capsule on another core, a timer, an arena block from the general heap), then a look at which
// allocator serves the process's malloc.
#pragma once

#include <aem/arena.hpp>
#include <aem/capsule.hpp>
#include <aem/cross_core.hpp>
#include <aem/runtime.hpp>
#include <aem/timer.hpp>

#include <dlfcn.h>
#include <link.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

namespace consumer {

// malloc_provider names the object (library or program) whose malloc the process calls.
inline std::string malloc_provider() {
  void* symbol = ::dlsym(RTLD_DEFAULT, "malloc");
  Dl_info info{};
  if (symbol == nullptr || ::dladdr(symbol, &info) == 0 || info.dli_fname == nullptr) return "?";
  return info.dli_fname;
}

// mimalloc_loaded tells whether libmimalloc is among the process's loaded objects.
inline bool mimalloc_loaded() {
  bool found = false;
  ::dl_iterate_phdr(
      [](dl_phdr_info* object, std::size_t, void* out) {
        if (object->dlpi_name != nullptr && std::strstr(object->dlpi_name, "mimalloc") != nullptr) {
          *static_cast<bool*>(out) = true;
        }
        return 0;
      },
      &found);
  return found;
}

// run_program runs the aem program; 42 when everything answered.
inline int run_program() {
  aem::Runtime rt(aem::Config{.cores = 2});
  return rt.run([] {
    auto child = aem::spawn([] { return 40; }, {.core = 1});
    int fired = 0;
    auto id = aem::after(std::chrono::milliseconds(1), [&fired] { fired = 1; });
    while (fired == 0) aem::this_capsule::sleep_for(std::chrono::milliseconds(1));
    // A block larger than the region comes from the general heap: whatever allocator the
    // process has.
    aem::BuddyArena arena{aem::ArenaConfig{.capacity = std::size_t{1} << 16}};
    auto block = arena.allocate_data((std::size_t{1} << 16) + 1);
    const bool fallback_ok = block && !arena.contains(block->data()) && arena.stats().fallback_count == 1;
    if (block) block->reset();
    return child->join() + fired + (id ? 1 : 0) - (fallback_ok ? 0 : 100);
  });
}

// report prints the outcome as check.cmake expects it and returns the exit status.
// `want_mimalloc`: whether this program linked aem::mimalloc.
inline int report(bool want_mimalloc) {
  const int answer = run_program();
  const std::string provider = malloc_provider();
  const bool loaded = mimalloc_loaded();
#if defined(AEM_SANITIZE_BUILD)
  // A sanitizer's runtime interposes malloc itself; only whether mimalloc is loaded is checked.
  const bool allocator_ok = loaded == want_mimalloc;
#else
  const bool allocator_ok = loaded == want_mimalloc &&
                            provider.find(want_mimalloc ? "libmimalloc" : "libc.so") != std::string::npos;
#endif
  std::printf("consumer ok: %d; malloc from %s; mimalloc loaded: %s\n", answer, provider.c_str(),
              loaded ? "yes" : "no");
  if (!allocator_ok) {
    std::printf("allocator wrong: wanted %s\n", want_mimalloc ? "mimalloc" : "the C library's malloc");
  }
  return answer == 42 && allocator_ok ? 0 : 1;
}

}  // namespace consumer
