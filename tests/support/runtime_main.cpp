// Test main for manager tests: rank 0 runs the tests inside Runtime::run while the
// other ranks serve as workers. Every rank exits with rank 0's result, and a rank that
// dies takes the job down, so a failure anywhere fails the test.

#include "runtime_main.hpp"

#include <gtest/gtest.h>

namespace parc::test {
Runtime* runtime = nullptr;
}

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  parc::Runtime rt(argc, argv);
  parc::test::runtime = &rt;
  return rt.run([] { return RUN_ALL_TESTS(); });
}
