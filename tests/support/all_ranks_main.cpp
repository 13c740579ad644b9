// Test main for comm tests: every rank runs every test; the job fails when any rank
// has a failure.

#include "all_ranks_main.hpp"

#include <gtest/gtest.h>

namespace parc::test {
Environment* environment = nullptr;
}

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  parc::Environment environment(&argc, &argv);
  parc::test::environment = &environment;
  if (environment.rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  const int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  std::uint64_t failures_everywhere = 0;
  for (auto f : environment.allgather(static_cast<std::uint64_t>(failed))) failures_everywhere += f;
  if (environment.rank() == 0 && failures_everywhere > 0) {
    std::fprintf(stderr, "%llu rank(s) had failures\n",
                 static_cast<unsigned long long>(failures_everywhere));
  }
  return failures_everywhere > 0 ? 1 : 0;
}
