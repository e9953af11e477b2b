#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

namespace {

// MatchCounter records how many test cases a run selected. ctest runs each test case as its own
// entry (`--test-case=NAME`); a name that the discovery mangles (CMake splits list items at ';')
// would select nothing and pass without running. main turns that into a failure.
struct MatchCounter : doctest::IReporter {
  static inline bool ran = false;
  static inline unsigned selected = 0;

  explicit MatchCounter(const doctest::ContextOptions&) {}
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats& stats) override {
    ran = true;
    selected = stats.numTestCasesPassingFilters;
  }
  void test_case_start(const doctest::TestCaseData&) override {}
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {}
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};

}  // namespace

REGISTER_LISTENER("match_counter", 1, MatchCounter);

int main(int argc, char** argv) {
  doctest::Context context;
  context.applyCommandLine(argc, argv);
  const int status = context.run();
  if (status == 0 && MatchCounter::ran && MatchCounter::selected == 0) {
    std::fprintf(stderr, "no test case matches the filters given: nothing ran\n");
    return 1;
  }
  return status;
}
