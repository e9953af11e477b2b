// aem_hello — the smallest complete aem program: spawn on another core, a timer, a blocking
// sleep that suspends only the capsule, and a cross-core submit.
#include <aem/capsule.hpp>
#include <aem/cross_core.hpp>
#include <aem/runtime.hpp>
#include <aem/timer.hpp>

#include <cstdio>

using namespace std::chrono_literals;

int main() {
  aem::Runtime rt(aem::Config{.cores = 2});
  const int status = rt.run([] {  // this thread becomes core 0 until the lambda returns
    auto child = aem::spawn([] { return 6 * 7; }, {.priority = aem::Priority::high, .core = 1});
    if (!child) {
      std::fprintf(stderr, "spawn: %s\n", child.error().message().c_str());
      return 1;
    }
    auto timer = aem::after(5ms, [] { std::printf("timer fired on core %u\n", aem::this_core::id()); });
    if (!timer) return 1;
    aem::this_capsule::sleep_for(10ms);  // the core runs the timer's capsule meanwhile
    const auto where = aem::submit(1, [] { return aem::this_core::id(); });
    std::printf("child says %d; submit ran on core %u\n", child->join(), where.value());
    return 0;
  });
  return status;
}
