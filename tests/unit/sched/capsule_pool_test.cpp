#include "support/cores.hpp"
#include "support/child_process.hpp"

#include <aem/capsule.hpp>
#include <aem/runtime.hpp>

#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>
#include <unistd.h>
#include <string>
#include <sys/resource.h>
#include <vector>

namespace {

// count_guard_pages counts the one-page PROT_NONE mappings: each capsule stack has exactly one
// below it. (Counting every mapping would also count the heap's, which change under ASan.)
std::size_t count_guard_pages() {
  const auto page = static_cast<unsigned long>(::sysconf(_SC_PAGESIZE));
  std::ifstream maps("/proc/self/maps");
  std::size_t n = 0;
  for (std::string line; std::getline(maps, line);) {
    unsigned long begin = 0, end = 0;
    char perms[5] = {};
    if (std::sscanf(line.c_str(), "%lx-%lx %4s", &begin, &end, perms) == 3 && std::string(perms) == "---p" &&
        end - begin == page) {
      ++n;
    }
  }
  return n;
}

int recurse(int depth) {
  volatile char frame[1024];
  frame[0] = static_cast<char>(depth);
  if (depth == 0) return frame[0];
  return recurse(depth - 1) + frame[0];
}

}  // namespace

TEST_CASE("capsule pool: stacks are mapped once, never per spawn") {
  aem::Runtime rt(aem_test::config_for(1));
  rt.run([] {
    auto cycle = [] {
      for (int i = 0; i < 2000; ++i) {
        auto c = aem::spawn([i] { return i; });
        REQUIRE(c);
        CHECK(c->join() == i);
      }
    };
    cycle();  // warm up
    const std::size_t before = count_guard_pages();
    CHECK(before >= 16);  // the pool's stacks (and the guard page below each) are there
    cycle();
    CHECK(count_guard_pages() == before);
  });
}

TEST_CASE("capsule pool: grows on demand up to max_capsules, then spawn fails cleanly") {
  aem::Config config = aem_test::config_for(1);
  config.capsules_per_core = 2;
  config.max_capsules = 40;
  aem::Runtime rt(config);
  rt.run([] {
    bool release = false;
    std::vector<aem::Capsule<void>> held;
    for (;;) {
      auto c = aem::spawn([&] {
        while (!release) aem::this_capsule::yield();
      });
      if (!c) {
        CHECK(c.error() == aem::errc::resource_limit);
        CHECK(c.error().message().find("limit") != std::string::npos);
        break;
      }
      held.push_back(std::move(*c));
    }
    CHECK(held.size() == 39);  // the root holds the 40th
    release = true;
    for (auto& c : held) c.join();
    auto again = aem::spawn([] { return 1; });
    REQUIRE(again);
    CHECK(again->join() == 1);
  });
}

TEST_CASE("capsule pool: a stack overflow hits the guard page and names the capsule") {
  const aem_test::ChildResult child = aem_test::run_in_child([] {
    aem::Config config = aem_test::config_for(1);
    config.stack_size = 16 * 1024;
    aem::Runtime rt(config);
    rt.run([] {
      auto c = aem::spawn([] { return recurse(1 << 20); });
      return c->join();
    });
    return 0;
  });
  CAPTURE(child.output);
  CHECK(child.signaled);
  CHECK(child.signal == SIGABRT);
  CHECK(child.output.find("aem: capsule ") != std::string::npos);
  CHECK(child.output.find(" overflowed its 16 KiB stack") != std::string::npos);
}

TEST_CASE("capsule pool: when mappings run out the error names vm.max_map_count") {
  const aem_test::ChildResult child = aem_test::run_in_child([] {
    aem::Config config = aem_test::config_for(1);
    config.capsules_per_core = 1;
    config.max_capsules = 1'000'000;
    // The spawning loop below does not switch; on a loaded machine it runs past the stall
    // threshold, and the watchdog's report allocates. Under the capped address space that
    // allocation fails, and mimalloc (linked into the tests) aborts on a failed `new` where
    // the default allocator would throw (which the report catches). Not what this test is for.
    config.stall_threshold = std::chrono::milliseconds(0);
    aem::Runtime rt(config);
    return rt.run([] {
      // Cap the address space so that mapping more stacks fails the way it does at the limit.
      rlimit limit{};
      getrlimit(RLIMIT_AS, &limit);
      rlimit capped = limit;
      capped.rlim_cur = 4ull << 30;
      setrlimit(RLIMIT_AS, &capped);
      std::vector<aem::Capsule<void>> held;
      bool release = false;
      int status = 1;
      for (int i = 0; i < 1'000'000; ++i) {
        auto c = aem::spawn([&] {
          while (!release) aem::this_capsule::yield();
        });
        if (!c) {
          const bool right_code = c.error() == aem::errc::map_count_limit;
          const bool explains = c.error().message().find("vm.max_map_count") != std::string::npos;
          status = right_code && explains ? 0 : 2;
          break;
        }
        held.push_back(std::move(*c));
      }
      release = true;
      for (auto& c : held) c.join();
      setrlimit(RLIMIT_AS, &limit);
      return status;
    });
  });
  CAPTURE(child.output);
  CAPTURE(child.signal);
  CHECK_FALSE(child.signaled);
  CHECK(child.exit_code == 0);
}
