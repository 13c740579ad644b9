#include "support/runtime_main.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <map>
#include <numeric>
#include <ranges>
#include <set>
#include <string>
#include <vector>

namespace app {

struct BadItem : std::runtime_error {
  using std::runtime_error::runtime_error;
};
PARC_REGISTER_EXCEPTION(BadItem);

// The three stages of the main pipeline: generate -> transform (2 workers) -> reduce.
std::vector<double> generate(int seed) {
  std::vector<double> values(8);
  std::iota(values.begin(), values.end(), static_cast<double>(seed));
  return values;
}
PARC_CLOSURE(generate);

std::vector<double> transform(std::vector<double> values) {
  for (double& v : values) v = v * v;
  return values;
}
PARC_CLOSURE(transform);

double reduce(std::vector<double> values) {
  return std::accumulate(values.begin(), values.end(), 0.0);
}
PARC_CLOSURE(reduce);

// Fails for items whose first value is a multiple of 7.
std::vector<double> transform_or_fail(std::vector<double> values) {
  const auto seed = static_cast<int>(values.front());
  if (seed % 7 == 0) throw BadItem("item " + std::to_string(seed) + " is a multiple of 7");
  return transform(std::move(values));
}
PARC_CLOSURE(transform_or_fail);

std::vector<double> fail_on_500(std::vector<double> values) {
  if (values.front() == 500.0) throw BadItem("item 500 is bad");
  return values;
}
PARC_CLOSURE(fail_on_500);

// Fails the first time each worker process sees a seed.
std::vector<double> flaky(std::vector<double> values) {
  static std::set<double> seen;
  if (seen.insert(values.front()).second) throw std::runtime_error("first attempt here");
  return values;
}
PARC_CLOSURE(flaky);

long inc(long x) { return x + 1; }
PARC_CLOSURE(inc);

long twice(long x) { return 2 * x; }
PARC_CLOSURE(twice);

std::int64_t pid_of(long) { return static_cast<std::int64_t>(getpid()); }
PARC_CLOSURE(pid_of);

int undeclared(int x) { return x; }

}  // namespace app

namespace {

parc::Runtime& rt() { return *parc::test::runtime; }

double expected(int seed) {
  double sum = 0;
  for (int k = 0; k < 8; ++k) sum += static_cast<double>((seed + k) * (seed + k));
  return sum;
}

TEST(Pipeline, OrderedOutputOfThreeStages) {
  parc::Pipeline pipe(rt(), parc::stage(app::generate), parc::stage(app::transform, 2),
                      parc::stage(app::reduce));
  static_assert(std::is_same_v<decltype(pipe)::Input, int>);
  static_assert(std::is_same_v<decltype(pipe)::Output, double>);
  std::vector<int> seeds(1000);
  std::iota(seeds.begin(), seeds.end(), 0);
  std::vector<double> sums = pipe.run(seeds);
  ASSERT_EQ(sums.size(), seeds.size());
  for (int seed : seeds) EXPECT_EQ(sums[static_cast<std::size_t>(seed)], expected(seed));
  EXPECT_TRUE(pipe.run(std::vector<int>{}).empty());
  // A pipeline runs again, and with a lazy range.
  sums = pipe.run(std::views::iota(0, 10));
  ASSERT_EQ(sums.size(), 10u);
  EXPECT_EQ(sums[9], expected(9));
}

TEST(Pipeline, ArrivalOrderGivesTheSameOutputs) {
  parc::Pipeline pipe(rt(), parc::stage(app::generate), parc::stage(app::transform, 2),
                      parc::stage(app::reduce));
  std::map<std::size_t, double> seen;
  std::multiset<double> values;
  pipe.for_each(
      std::views::iota(0, 500),
      [&](std::size_t index, double sum) {
        EXPECT_TRUE(seen.emplace(index, sum).second) << "item " << index << " twice";
        values.insert(sum);
      },
      false);
  ASSERT_EQ(seen.size(), 500u);
  std::multiset<double> wanted;
  for (int seed = 0; seed < 500; ++seed) {
    EXPECT_EQ(seen[static_cast<std::size_t>(seed)], expected(seed));
    wanted.insert(expected(seed));
  }
  EXPECT_EQ(values, wanted);
  // The one-argument callback form, in input order.
  std::vector<double> ordered;
  pipe.for_each(std::vector<int>{3, 1, 2}, [&](double sum) { ordered.push_back(sum); });
  EXPECT_EQ(ordered, (std::vector<double>{expected(3), expected(1), expected(2)}));
}

TEST(Pipeline, FailFastRaisesTheFailingItem) {
  parc::Pipeline pipe(rt(), parc::PipelineOptions{.window = 50}, parc::stage(app::generate),
                      parc::stage(app::fail_on_500, 2), parc::stage(app::reduce));
  std::size_t delivered = 0;
  std::size_t pulled = 0;
  auto inputs = std::views::iota(0, 100'000) | std::views::transform([&](int x) {
                  ++pulled;
                  return x;
                });
  try {
    pipe.for_each(inputs, [&](double) { ++delivered; });
    FAIL() << "no exception";
  } catch (const parc::ParallelException& e) {
    ASSERT_EQ(e.size(), 1u) << e.what();
    const parc::TaskError& error = e.errors().front();
    EXPECT_EQ(error.input_index(), 500);
    EXPECT_EQ(error.closure(), "fail_on_500, pipeline stage 2 of 3");
    EXPECT_NE(error.describe().find("input #500"), std::string::npos) << error.describe();
    EXPECT_THROW(error.rethrow(), app::BadItem);
  }
  EXPECT_LE(delivered, 500u);     // in input order: nothing after the failing item
  EXPECT_LE(pulled, 501u + 50u);  // the failure stopped the stream
  // The runtime is clean for the next run.
  EXPECT_EQ(pipe.run(std::views::iota(0, 3)).size(), 3u);
}

TEST(Pipeline, CollectAllDropsFailedItemsAndRaisesEveryFailure) {
  parc::Pipeline pipe(rt(), parc::PipelineOptions{.policy = parc::Policy::collect_all},
                      parc::stage(app::generate), parc::stage(app::transform_or_fail, 2),
                      parc::stage(app::reduce));
  std::vector<std::pair<std::size_t, double>> outputs;
  try {
    pipe.for_each(std::views::iota(0, 100),
                  [&](std::size_t index, double sum) { outputs.emplace_back(index, sum); });
    FAIL() << "no exception";
  } catch (const parc::ParallelException& e) {
    ASSERT_EQ(e.size(), 15u) << e.what();  // 0, 7, ..., 98
    for (std::size_t i = 0; i < e.size(); ++i) {
      const parc::TaskError& error = e.errors()[i];
      EXPECT_EQ(error.input_index(), static_cast<std::int64_t>(7 * i));
      EXPECT_EQ(error.message(), "item " + std::to_string(7 * i) + " is a multiple of 7");
      EXPECT_NE(error.describe().find("pipeline stage 2 of 3"), std::string::npos);
      EXPECT_THROW(error.rethrow(), app::BadItem);
    }
  }
  ASSERT_EQ(outputs.size(), 85u);
  std::size_t at = 0;
  for (int seed = 0; seed < 100; ++seed) {
    if (seed % 7 == 0) continue;
    EXPECT_EQ(outputs[at].first, static_cast<std::size_t>(seed));
    EXPECT_EQ(outputs[at].second, expected(seed));
    ++at;
  }
}

TEST(Pipeline, RetriesRecoverAFlakyStage) {
  // flaky fails once per worker process and item: 1 + (its stage's workers) attempts do.
  // It passes values on unsquared: the outputs are the sums of the generated values.
  parc::Pipeline pipe(rt(), parc::PipelineOptions{.retries = 3}, parc::stage(app::generate),
                      parc::stage(app::flaky, 2), parc::stage(app::reduce));
  std::vector<double> sums = pipe.run(std::views::iota(1000, 1050));
  ASSERT_EQ(sums.size(), 50u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(sums[static_cast<std::size_t>(i)], 8.0 * (1000 + i) + 28);
  // Without retries the same (fresh) items fail.
  parc::Pipeline once(rt(), parc::PipelineOptions{.policy = parc::Policy::collect_all},
                      parc::stage(app::generate), parc::stage(app::flaky, 2),
                      parc::stage(app::reduce));
  EXPECT_THROW(once.run(std::views::iota(2000, 2010)), parc::ParallelException);
}

TEST(Pipeline, StreamsAnInputLargerThanTheWindow) {
  parc::Pipeline pipe(rt(), parc::PipelineOptions{.window = 100}, parc::stage(app::inc),
                      parc::stage(app::twice, 2), parc::stage(app::inc));
  std::size_t pulled = 0;
  std::size_t consumed = 0;
  std::size_t most_ahead = 0;
  long checksum = 0;
  auto inputs = std::views::iota(0L, 100'000L) | std::views::transform([&](long x) {
                  ++pulled;
                  return x;
                });
  pipe.for_each(inputs, [&](std::size_t index, long y) {
    EXPECT_EQ(y, 2 * (static_cast<long>(index) + 1) + 1);
    ++consumed;
    most_ahead = std::max(most_ahead, pulled - consumed);
    checksum += y;
  });
  EXPECT_EQ(consumed, 100'000u);
  EXPECT_EQ(pulled, 100'000u);
  EXPECT_LT(most_ahead, 100u);  // never more than the window in flight
  EXPECT_EQ(checksum, 100'000L * 100'001L + 100'000L);
}

TEST(Pipeline, OneWorkerStagesStayOnOneRank) {
  parc::Pipeline pipe(rt(), parc::stage(app::twice, 2), parc::stage(app::pid_of));
  const auto ranks = pipe.stage_ranks();
  ASSERT_EQ(ranks.size(), 2u);
  EXPECT_EQ(ranks[0].size(), static_cast<std::size_t>(std::min(2, rt().workers())));
  ASSERT_EQ(ranks[1].size(), 1u);
  const std::vector<std::int64_t> pids = pipe.run(std::views::iota(0L, 200L));
  EXPECT_EQ(std::set<std::int64_t>(pids.begin(), pids.end()).size(), 1u);
  // Stages take ranks in turn from the workers.
  EXPECT_EQ(parc::detail::assign_pipeline_ranks({1, 2, 3}, {1, 2, 1}),
            (std::vector<std::vector<int>>{{1}, {2, 3}, {1}}));
  EXPECT_EQ(parc::detail::assign_pipeline_ranks({1, 2}, {1, 2, 1}),
            (std::vector<std::vector<int>>{{1}, {2, 1}, {2}}));
  EXPECT_EQ(parc::detail::assign_pipeline_ranks({1}, {3, 1}),
            (std::vector<std::vector<int>>{{1}, {1}}));
}

TEST(Pipeline, LeavingEarlyLeavesNothingQueued) {
  parc::Pipeline pipe(rt(), parc::stage(app::inc), parc::stage(app::twice, 2));
  struct Stop {};
  std::size_t seen = 0;
  EXPECT_THROW(pipe.for_each(std::views::iota(0L, 1'000'000L),
                             [&](long) {
                               if (++seen == 10) throw Stop{};
                             }),
               Stop);
  // The next manager finds the workers free and the queue empty.
  parc::TaskFarm farm(rt());
  EXPECT_EQ(farm.map(app::inc, std::vector<long>{1, 2, 3}), (std::vector<long>{2, 3, 4}));
  EXPECT_EQ(pipe.run(std::views::iota(0L, 5L)), (std::vector<long>{2, 4, 6, 8, 10}));
}

TEST(Pipeline, BadStagesAreUsageErrors) {
  EXPECT_THROW((void)parc::Pipeline(rt(), parc::stage(app::inc, 0)), parc::UsageError);
  EXPECT_THROW((void)parc::Pipeline(rt(), parc::stage(app::undeclared)), parc::UsageError);
  EXPECT_THROW(
      (void)parc::Pipeline(rt(), parc::PipelineOptions{.retries = -1}, parc::stage(app::inc)),
      parc::UsageError);
}

}  // namespace
