#include <aem/capsule.hpp>
#include <aem/cross_core.hpp>
#include <aem/runtime.hpp>
#include <aem/timer.hpp>

int main() {
  aem::Runtime rt(aem::Config{.cores = 2});
  return rt.run([] {                                   // this thread becomes core 0
    auto child = aem::spawn([] { return 6 * 7; }, {.priority = aem::Priority::high, .core = 1});
    auto timer = aem::after(std::chrono::milliseconds(5), [] { /* runs in a fresh capsule */ });
    if (!timer) return 1;                              // errc::shutting_down, errc::resource_limit, ...
    aem::this_capsule::sleep_for(std::chrono::milliseconds(10));   // suspends the capsule only
    int on_core_1 = aem::submit(1, [] { return aem::this_core::id(); }).value();
    return child->join() - 42 + static_cast<int>(on_core_1) - 1;   // 0
  });
}
