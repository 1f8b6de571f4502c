// cuda_kernels_main: the entry point of test_cuda_kernels and test_cuda_backend. Without a usable CUDA device it
// says so once, runs only the host-side cases and exits 77 (CTest's SKIP_RETURN_CODE) when
// nothing was left to run, so a no-GPU machine reports GPU cases as skipped, never failed.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <string_view>

#include "tests/kernels/cuda_test_util.hpp"

namespace {

unsigned cases_run = 0;

/// Records how many cases passed the filters; doctest reports it only to reporters.
struct run_counter : doctest::IReporter {
  explicit run_counter(const doctest::ContextOptions&) {}
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats& stats) override {
    cases_run = stats.numTestCasesPassingFilters;
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

REGISTER_LISTENER("run_counter", 1, run_counter);

/// Listing and help must show every case (CTest discovers them from the listing).
bool is_query(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg.starts_with("-l") || arg.starts_with("--list") || arg.starts_with("-h") ||
        arg.starts_with("--help") || arg.starts_with("-v") || arg.starts_with("--version") ||
        arg.starts_with("-c") || arg.starts_with("--count"))
      return true;
  }
  return false;
}

} // namespace

int main(int argc, char** argv) {
  doctest::Context context(argc, argv);
  bool skipping = false;
  if (!is_query(argc, argv)) {
    if (auto reason = troupe::test::gpu_unavailable_reason()) {
      std::printf("%s: no usable CUDA device (%s); the GPU cases (test suite \"gpu\") are "
                  "skipped\n",
                  argc > 0 ? argv[0] : "test", reason->c_str());
      context.addFilter("test-suite-exclude", "gpu");
      skipping = true;
    }
  }
  const int rc = context.run();
  if (context.shouldExit() || rc != 0)
    return rc;
  return skipping && cases_run == 0 ? 77 : 0;
}
