#include <aem/capsule.hpp>
#include <aem/runtime.hpp>

#include <cstdio>

int main() {
  aem::Runtime rt(aem::Config{.cores = 1});
  return rt.run([] {
    auto answer = aem::spawn([] { return 42; });
    if (!answer) return 1;
    std::printf("%d\n", answer->join());
    return 0;
  });
}
