#include <parc/exceptions/errors.hpp>
#include <parc/exceptions/parallel_exception.hpp>
#include <parc/exceptions/registry.hpp>

#include <gtest/gtest.h>

namespace app {
struct RegisteredError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct UnregisteredError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
PARC_REGISTER_EXCEPTION(RegisteredError);
}  // namespace app

namespace {

std::exception_ptr capture(auto&& throwing) {
  try {
    throwing();
  } catch (...) {
    return std::current_exception();
  }
  return nullptr;
}

parc::ErrorInfo info_of(std::exception_ptr error) {
  parc::ErrorInfo info;
  info.chain = parc::record_chain(error);
  info.rank = 2;
  info.host = "node7";
  info.pid = 4242;
  info.task_id = 17;
  info.closure = "simulate";
  return info;
}

TEST(RecordChain, RecordsTypeAndMessage) {
  auto chain = parc::record_chain(capture([] { throw std::invalid_argument("bad x"); }));
  ASSERT_EQ(chain.size(), 1u);
  EXPECT_EQ(chain[0].type_name, "std::invalid_argument");
  EXPECT_EQ(chain[0].message, "bad x");
  EXPECT_TRUE(chain[0].is_std_exception);
}

TEST(RecordChain, FollowsNestedExceptionsOutermostFirst) {
  auto error = capture([] {
    try {
      throw std::out_of_range("index 9");
    } catch (...) {
      std::throw_with_nested(app::UnregisteredError("loading failed"));
    }
  });
  auto chain = parc::record_chain(error);
  ASSERT_EQ(chain.size(), 2u);
  EXPECT_EQ(chain[0].type_name, "app::UnregisteredError");
  EXPECT_EQ(chain[1].type_name, "std::out_of_range");
  EXPECT_EQ(chain[1].message, "index 9");
}

TEST(RecordChain, ReportsNonStdThrows) {
  auto chain = parc::record_chain(capture([] { throw 42; }));
  ASSERT_EQ(chain.size(), 1u);
  EXPECT_FALSE(chain[0].is_std_exception);
  EXPECT_EQ(chain[0].type_name, "int");
  EXPECT_EQ(chain[0].message, "42");
  chain = parc::record_chain(capture([] { throw "plain text"; }));
  EXPECT_EQ(chain[0].type_name, "char const*");
  EXPECT_EQ(chain[0].message, "plain text");
}

TEST(Rebuild, RegisteredTypesComeBackAsThemselves) {
  auto rebuilt =
      parc::rebuild_exception(info_of(capture([] { throw app::RegisteredError("boom"); })));
  try {
    std::rethrow_exception(rebuilt);
  } catch (const app::RegisteredError& e) {
    EXPECT_STREQ(e.what(), "boom");
    return;
  } catch (...) {
  }
  FAIL() << "not rebuilt as app::RegisteredError";
}

TEST(Rebuild, StandardTypesAreRegistered) {
  auto rebuilt =
      parc::rebuild_exception(info_of(capture([] { throw std::invalid_argument("x"); })));
  EXPECT_THROW(std::rethrow_exception(rebuilt), std::invalid_argument);
}

TEST(Rebuild, UnregisteredTypesBecomeRemoteErrorWithTheirName) {
  auto rebuilt =
      parc::rebuild_exception(info_of(capture([] { throw app::UnregisteredError("nope"); })));
  try {
    std::rethrow_exception(rebuilt);
  } catch (const parc::RemoteError& e) {
    EXPECT_EQ(e.type_name(), "app::UnregisteredError");
    EXPECT_EQ(e.message(), "nope");
    EXPECT_EQ(e.info().rank, 2);
    EXPECT_EQ(e.info().task_id, 17u);
    EXPECT_STREQ(e.what(), "app::UnregisteredError: nope");
    return;
  }
  FAIL();
}

TEST(Rebuild, NonStdThrowsBecomeRemoteError) {
  auto rebuilt = parc::rebuild_exception(info_of(capture([] { throw 7; })));
  try {
    std::rethrow_exception(rebuilt);
  } catch (const parc::RemoteError& e) {
    EXPECT_FALSE(e.is_std_exception());
    EXPECT_STREQ(e.what(), "non-std::exception of type int: 7");
    return;
  }
  FAIL();
}

TEST(Rebuild, NestedChainSurvivesAndCanBeUnwound) {
  auto error = capture([] {
    try {
      throw app::RegisteredError("inner");
    } catch (...) {
      std::throw_with_nested(std::runtime_error("outer"));
    }
  });
  auto rebuilt = parc::rebuild_exception(info_of(error));
  try {
    std::rethrow_exception(rebuilt);
  } catch (const std::runtime_error& outer) {
    EXPECT_STREQ(outer.what(), "outer");
    try {
      std::rethrow_if_nested(outer);
      FAIL() << "no nested exception";
    } catch (const app::RegisteredError& inner) {
      EXPECT_STREQ(inner.what(), "inner");
      return;
    }
  }
  FAIL();
}

TEST(ErrorInfo, DescribeNamesWhereAndWhat) {
  auto info = info_of(capture([] { throw std::invalid_argument("bad x"); }));
  EXPECT_EQ(
      info.describe(),
      "rank 2 (host node7, pid 4242), task 17, closure simulate: std::invalid_argument: bad x");
}

TEST(ParallelException, HoldsEveryErrorAndSummarizesThem) {
  std::vector<parc::TaskError> errors;
  for (int i = 0; i < 3; ++i) {
    auto info = info_of(capture([] { throw std::range_error("r"); }));
    info.task_id = static_cast<std::uint64_t>(i);
    errors.emplace_back(info, parc::rebuild_exception(info));
  }
  parc::ParallelException group(std::move(errors));
  EXPECT_EQ(group.size(), 3u);
  EXPECT_EQ(group.errors()[1].task_id(), 1u);
  EXPECT_NE(std::string(group.what()).find("3 tasks failed"), std::string::npos);
  EXPECT_THROW(group.errors()[2].rethrow(), std::range_error);
  const std::exception& base = group;  // catchable as std::exception
  EXPECT_NE(std::string(base.what()).find("task 2"), std::string::npos);
}

}  // namespace
