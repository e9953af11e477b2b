// A program outside the aem tree: it knows only find_package(aem) and aem::aem.
#include <aem/capsule.hpp>
#include <aem/cross_core.hpp>
#include <aem/runtime.hpp>
#include <aem/timer.hpp>

#include <chrono>
#include <cstdio>

int main() {
  aem::Runtime rt(aem::Config{.cores = 2});
  const int answer = rt.run([] {
    auto child = aem::spawn([] { return 40; }, {.core = 1});
    int fired = 0;
    auto id = aem::after(std::chrono::milliseconds(1), [&fired] { fired = 1; });
    while (fired == 0) aem::this_capsule::sleep_for(std::chrono::milliseconds(1));
    return child->join() + fired + (id ? 1 : 0);
  });
  std::printf("consumer ok: %d\n", answer);
  return answer == 42 ? 0 : 1;
}
