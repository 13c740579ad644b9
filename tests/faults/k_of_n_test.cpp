// Exceptions thrown on K of N tasks, SPMD ranks and pipeline items: the ParallelException
// has exactly K members (collect_all; at least one with fail_fast), each of the thrown type
// or parc::RemoteError as docs/exceptions.md promises, every time (each check repeats).

#include "support/runtime_main.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <tuple>
#include <vector>

namespace app {

struct KofnError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
PARC_REGISTER_EXCEPTION(KofnError);

struct Opaque {  // neither a std::exception nor a value parc can print
  int value = 0;
};

enum Kind : int { runtime_error, custom, nested, integer, string, opaque };

[[noreturn]] void boom(int kind, int where) {
  const std::string at = std::to_string(where);
  switch (kind) {
    case runtime_error:
      throw std::runtime_error("runtime " + at);
    case custom:
      throw KofnError("custom " + at);
    case nested:
      try {
        throw std::out_of_range("inner " + at);
      } catch (...) {
        std::throw_with_nested(KofnError("outer " + at));
      }
    case integer:
      throw 40 + where;
    case string:
      throw std::string("string " + at);
    default:
      throw Opaque{where};
  }
}

bool fails(const std::vector<int>& failing, int x) {
  return std::find(failing.begin(), failing.end(), x) != failing.end();
}

int kofn_task(int x, int kind, std::vector<int> failing) {
  if (fails(failing, x)) boom(kind, x);
  return x * 10;
}
PARC_CLOSURE(kofn_task);

int kofn_region(parc::SpmdContext& ctx, int kind, std::vector<int> failing) {
  // Before any parc call, so no other rank's cancellation can come first.
  if (fails(failing, ctx.rank())) boom(kind, ctx.rank());
  return ctx.allreduce(1);  // the others wait here and are released
}
PARC_CLOSURE(kofn_region);

struct Item {
  int x = 0;
  int kind = 0;
  std::vector<int> failing;
  template <class Archive>
  void serialize(Archive& archive) {
    archive(x, kind, failing);
  }
};

Item pass_on(Item item) { return item; }
PARC_CLOSURE(pass_on);

int stage_fails(Item item) {
  if (fails(item.failing, item.x)) boom(item.kind, item.x);
  return item.x * 10;
}
PARC_CLOSURE(stage_fails);

}  // namespace app

namespace {

using parc::test::runtime;

constexpr int n_tasks = 6;
constexpr int repeats = 3;

// The K failing positions of n: one (the last), some (about half, spread), all.
std::vector<int> failing_of(int n, int k) {
  std::vector<int> failing;
  for (int i = 0; i < k; ++i) failing.push_back(n - 1 - (i * n) / k);
  std::sort(failing.begin(), failing.end());
  return failing;
}

int k_of(int n, const std::string& size) {
  if (size == "one") return 1;
  if (size == "some") return std::max(1, n / 2);
  return n;
}

// The failure is what boom(kind, where) threw, rebuilt as docs/exceptions.md says.
void check_kind(const parc::TaskError& error, int kind, int where) {
  const std::string at = std::to_string(where);
  const auto& chain = error.info().chain;
  ASSERT_FALSE(chain.empty());
  switch (kind) {
    case app::runtime_error:
      EXPECT_EQ(error.type_name(), "std::runtime_error");
      EXPECT_EQ(error.message(), "runtime " + at);
      try {
        error.rethrow();
      } catch (const parc::RemoteError&) {
        ADD_FAILURE() << "a registered type arrived as RemoteError";
      } catch (const std::runtime_error& e) {
        EXPECT_EQ(std::string(e.what()), "runtime " + at);
      }
      break;
    case app::custom:
      EXPECT_EQ(error.type_name(), "app::KofnError");
      EXPECT_THROW(error.rethrow(), app::KofnError);
      break;
    case app::nested:
      ASSERT_EQ(chain.size(), 2u);
      EXPECT_EQ(chain[0].type_name, "app::KofnError");
      EXPECT_EQ(chain[0].message, "outer " + at);
      EXPECT_EQ(chain[1].type_name, "std::out_of_range");
      EXPECT_EQ(chain[1].message, "inner " + at);
      try {
        error.rethrow();
      } catch (const app::KofnError& outer) {
        EXPECT_THROW(std::rethrow_if_nested(outer), std::out_of_range);
      }
      break;
    case app::integer:
    case app::string:
    case app::opaque: {
      const std::string value = kind == app::integer  ? std::to_string(40 + where)
                                : kind == app::string ? "string " + at
                                                      : "";
      EXPECT_FALSE(chain[0].is_std_exception);
      EXPECT_EQ(error.message(), value);
      if (kind == app::integer) {
        EXPECT_EQ(error.type_name(), "int");
      } else if (kind == app::string) {
        EXPECT_NE(error.type_name().find("basic_string"), std::string::npos);
      } else {
        EXPECT_EQ(error.type_name(), "app::Opaque");
      }
      try {
        error.rethrow();
      } catch (const parc::RemoteError& e) {
        EXPECT_FALSE(e.is_std_exception());
        EXPECT_EQ(e.type_name(), error.type_name());
        EXPECT_EQ(std::string(e.what()), "non-std::exception of type " + error.type_name() +
                                             (value.empty() ? "" : ": " + value));
      }
      EXPECT_NE(error.describe().find("(not a std::exception)"), std::string::npos);
      break;
    }
  }
}

// Where it ran: a worker rank, this host, a worker process (this one, serially).
void check_origin(const parc::TaskError& error, const std::string& closure) {
  EXPECT_GE(error.rank(), 1);
  EXPECT_LE(error.rank(), runtime->workers());
  EXPECT_FALSE(error.host().empty());
  EXPECT_EQ(error.pid() == getpid(), runtime->serial()) << error.describe();
  EXPECT_EQ(error.closure(), closure);
}

class KofN : public ::testing::TestWithParam<std::tuple<int, std::string>> {
 protected:
  int kind() const { return std::get<0>(GetParam()); }
  std::string size() const { return std::get<1>(GetParam()); }
};

TEST_P(KofN, FarmMapCollectAllHasExactlyKMembers) {
  const auto failing = failing_of(n_tasks, k_of(n_tasks, size()));
  std::vector<std::tuple<int, int, std::vector<int>>> calls;
  for (int x = 0; x < n_tasks; ++x) calls.emplace_back(x, kind(), failing);
  parc::TaskFarm farm(*runtime, parc::Policy::collect_all);
  for (int rep = 0; rep < repeats; ++rep) {
    SCOPED_TRACE("repeat " + std::to_string(rep));
    try {
      farm.map(app::kofn_task, calls);
      ADD_FAILURE() << "map did not raise";
    } catch (const parc::ParallelException& e) {
      ASSERT_EQ(e.size(), failing.size()) << e.what();
      for (std::size_t i = 0; i < failing.size(); ++i) {
        const parc::TaskError& error = e.errors()[i];
        EXPECT_EQ(error.input_index(), failing[i]);
        check_kind(error, kind(), failing[i]);
        check_origin(error, "kofn_task");
      }
    }
  }
}

TEST_P(KofN, FarmWaitAllHasExactlyKMembers) {
  const auto failing = failing_of(n_tasks, k_of(n_tasks, size()));
  std::vector<std::tuple<int, int, std::vector<int>>> calls;
  for (int x = 0; x < n_tasks; ++x) calls.emplace_back(x, kind(), failing);
  parc::TaskFarm farm(*runtime, parc::Policy::collect_all);
  for (int rep = 0; rep < repeats; ++rep) {
    SCOPED_TRACE("repeat " + std::to_string(rep));
    auto futures = farm.submit_batch(app::kofn_task, calls);
    try {
      parc::wait_all(futures);
      ADD_FAILURE() << "wait_all did not raise";
    } catch (const parc::ParallelException& e) {
      ASSERT_EQ(e.size(), failing.size()) << e.what();
      for (std::size_t i = 0; i < failing.size(); ++i)
        check_kind(e.errors()[i], kind(), failing[i]);
    }
    for (int x = 0; x < n_tasks; ++x) {
      auto& future = futures[static_cast<std::size_t>(x)];
      EXPECT_EQ(future.failed(), app::fails(failing, x));
      if (!app::fails(failing, x)) {
        EXPECT_EQ(future.get(), x * 10);
      }
    }
  }
}

TEST_P(KofN, FarmFailFastRaisesAtLeastOneAndStaysUsable) {
  const auto failing = failing_of(n_tasks, k_of(n_tasks, size()));
  std::vector<std::tuple<int, int, std::vector<int>>> calls;
  for (int x = 0; x < n_tasks; ++x) calls.emplace_back(x, kind(), failing);
  parc::TaskFarm farm(*runtime);
  for (int rep = 0; rep < repeats; ++rep) {
    SCOPED_TRACE("repeat " + std::to_string(rep));
    try {
      farm.map(app::kofn_task, calls);
      ADD_FAILURE() << "map did not raise";
    } catch (const parc::ParallelException& e) {
      ASSERT_GE(e.size(), 1u);
      ASSERT_LE(e.size(), failing.size());
      for (const auto& error : e.errors()) {
        EXPECT_TRUE(app::fails(failing, static_cast<int>(error.input_index())));
        check_kind(error, kind(), static_cast<int>(error.input_index()));
      }
    }
    EXPECT_EQ(farm.submit(app::kofn_task, 1, kind(), std::vector<int>{}).get(), 10);
  }
}

TEST_P(KofN, SpmdRegionHasExactlyKMembers) {
  const int n = runtime->workers();
  const auto failing = failing_of(n, k_of(n, size()));
  parc::Spmd spmd(*runtime);
  const auto ranks = spmd.ranks();
  for (int rep = 0; rep < repeats; ++rep) {
    SCOPED_TRACE("repeat " + std::to_string(rep));
    try {
      spmd.run(app::kofn_region, kind(), failing);
      ADD_FAILURE() << "the region did not raise";
    } catch (const parc::ParallelException& e) {
      ASSERT_EQ(e.size(), failing.size()) << e.what();
      for (std::size_t i = 0; i < failing.size(); ++i) {
        const parc::TaskError& error = e.errors()[i];
        EXPECT_EQ(error.input_index(), failing[i]);  // the region rank
        EXPECT_EQ(error.rank(), ranks[static_cast<std::size_t>(failing[i])]);
        check_kind(error, kind(), failing[i]);
        check_origin(error, "kofn_region");
      }
    }
  }
}

TEST_P(KofN, PipelineCollectAllHasExactlyKMembersAndTheRestComesOut) {
  const auto failing = failing_of(n_tasks, k_of(n_tasks, size()));
  std::vector<app::Item> items;
  for (int x = 0; x < n_tasks; ++x) items.push_back({x, kind(), failing});
  parc::Pipeline pipe(*runtime, parc::PipelineOptions{.policy = parc::Policy::collect_all},
                      parc::stage(app::pass_on), parc::stage(app::stage_fails, 2));
  for (int rep = 0; rep < repeats; ++rep) {
    SCOPED_TRACE("repeat " + std::to_string(rep));
    std::vector<int> outputs;
    try {
      pipe.for_each(items, [&](int value) { outputs.push_back(value); });
      ADD_FAILURE() << "the pipeline did not raise";
    } catch (const parc::ParallelException& e) {
      ASSERT_EQ(e.size(), failing.size()) << e.what();
      for (std::size_t i = 0; i < failing.size(); ++i) {
        const parc::TaskError& error = e.errors()[i];
        EXPECT_EQ(error.input_index(), failing[i]);
        check_kind(error, kind(), failing[i]);
        check_origin(error, "stage_fails, pipeline stage 2 of 2");
      }
    }
    std::vector<int> expected;
    for (int x = 0; x < n_tasks; ++x) {
      if (!app::fails(failing, x)) expected.push_back(x * 10);
    }
    EXPECT_EQ(outputs, expected);
  }
}

TEST_P(KofN, PipelineFailFastRaisesAtLeastOne) {
  const auto failing = failing_of(n_tasks, k_of(n_tasks, size()));
  std::vector<app::Item> items;
  for (int x = 0; x < n_tasks; ++x) items.push_back({x, kind(), failing});
  parc::Pipeline pipe(*runtime, parc::stage(app::pass_on), parc::stage(app::stage_fails, 2));
  for (int rep = 0; rep < repeats; ++rep) {
    SCOPED_TRACE("repeat " + std::to_string(rep));
    try {
      pipe.run(items);
      ADD_FAILURE() << "the pipeline did not raise";
    } catch (const parc::ParallelException& e) {
      ASSERT_GE(e.size(), 1u);
      ASSERT_LE(e.size(), failing.size());
      for (const auto& error : e.errors()) {
        check_kind(error, kind(), static_cast<int>(error.input_index()));
      }
    }
  }
}

std::string kof_n_name(const ::testing::TestParamInfo<std::tuple<int, std::string>>& info) {
  static const std::vector<std::string> kinds = {"runtime_error", "custom", "nested",
                                                 "int",           "string", "opaque"};
  return kinds[static_cast<std::size_t>(std::get<0>(info.param))] + "_" + std::get<1>(info.param);
}

INSTANTIATE_TEST_SUITE_P(Kinds, KofN,
                         ::testing::Combine(::testing::Values(app::runtime_error, app::custom,
                                                              app::nested, app::integer,
                                                              app::string, app::opaque),
                                            ::testing::Values("one", "some", "all")),
                         kof_n_name);

}  // namespace
