// parc::Spmd and parc::SpmdContext from C++: typed collectives, and cancellation that
// releases ranks blocked in a collective or a receive, by a failure or a timeout.

#include "support/runtime_main.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <numeric>
#include <set>
#include <thread>

namespace app {

struct Boom : std::runtime_error {
  using std::runtime_error::runtime_error;
};
PARC_REGISTER_EXCEPTION(Boom);

struct Point {
  int x = 0;
  double y = 0;
};

struct Labelled {
  std::string label;
  std::vector<int> values;
  template <class Archive>
  void serialize(Archive& archive) {
    archive(label, values);
  }
  bool operator==(const Labelled&) const = default;
};

struct Outcome {
  int rank = 0;
  int size = 0;
  long sum = 0;
  double max = 0;
  std::vector<double> elementwise;
  std::string concatenated;
  std::vector<int> allgathered;
  std::vector<int> gathered;
  int scattered = 0;
  Labelled broadcast;
  Labelled from_left;
  bool reduced_here = false;
  long reduced = 0;
  int point_x = 0;
  template <class Archive>
  void serialize(Archive& archive) {
    archive(rank, size, sum, max, elementwise, concatenated, allgathered, gathered, scattered,
            broadcast, from_left, reduced_here, reduced, point_x);
  }
};

Outcome collectives(parc::SpmdContext& ctx, int base) {
  const int n = ctx.size();
  const int r = ctx.rank();
  Outcome out;
  out.rank = r;
  out.size = n;
  ctx.send((r + 1) % n, Labelled{"from " + std::to_string(r), {r, r}}, 4);
  out.sum = ctx.allreduce(static_cast<long>(r + base));
  out.max = ctx.allreduce(r * 1.5, parc::max);
  out.elementwise = ctx.allreduce(std::vector<double>{1.0 * r, 2.0}, parc::sum);
  out.concatenated = ctx.allreduce(
      std::to_string(r), [](const std::string& a, const std::string& b) { return a + b; });
  out.allgathered = ctx.allgather(r * 10);
  out.gathered = ctx.gather(r, n - 1);
  std::vector<int> parts(static_cast<std::size_t>(n));
  std::iota(parts.begin(), parts.end(), 100);
  out.scattered = ctx.scatter(parts, 0);
  out.broadcast = ctx.bcast(Labelled{"root " + std::to_string(r), {base}}, n - 1);
  out.from_left = ctx.recv<Labelled>((r + n - 1) % n, 4);
  auto reduced = ctx.reduce(static_cast<long>(r), parc::sum, 0);
  out.reduced_here = reduced.has_value();
  out.reduced = reduced.value_or(-1);
  out.point_x = ctx.bcast(Point{42, 0.5}, 0).x;
  ctx.barrier();
  return out;
}
PARC_CLOSURE(collectives);

// Rank `failing` fails after a pause; the others wait in `where` meanwhile.
int fail_while_others_wait(parc::SpmdContext& ctx, int failing, std::string where) {
  if (ctx.rank() == failing) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    throw Boom("rank " + std::to_string(failing) + " failed");
  }
  if (where == "allreduce") ctx.allreduce(1);
  if (where == "barrier") ctx.barrier();
  if (where == "recv") ctx.recv<int>(failing);
  return 0;
}
PARC_CLOSURE(fail_while_others_wait);

int recv_forever(parc::SpmdContext& ctx) {
  if (ctx.rank() == 0) return ctx.recv<int>(ctx.size() - 1);
  ctx.barrier();
  return 0;
}
PARC_CLOSURE(recv_forever);

int world_rank_sum(parc::SpmdContext& ctx, int unused) {
  return ctx.allreduce(ctx.rank()) + unused;
}
PARC_CLOSURE(world_rank_sum);

int hostpid(parc::SpmdContext& ctx) {
  ctx.barrier();
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  return ctx.rank();
}
PARC_CLOSURE(hostpid);

int pid_of_task(int) {
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  return static_cast<int>(getpid());
}
PARC_CLOSURE(pid_of_task);

// Region rank 0 returns at once; the others wait for it in a collective or a recv.
int deserts(parc::SpmdContext& ctx, bool in_collective) {
  if (ctx.rank() == 0) return 0;
  return in_collective ? ctx.allreduce(1) : ctx.recv<int>(0, 7);
}
PARC_CLOSURE(deserts);

int plain(int x) { return x; }
PARC_CLOSURE(plain);

}  // namespace app

namespace {

using parc::test::runtime;

int workers() { return runtime->workers(); }

TEST(Spmd, TypedCollectivesGiveTheRightValues) {
  parc::Spmd spmd(*runtime);
  const auto outcomes = spmd.run(app::collectives, 5);
  const int n = workers();
  ASSERT_EQ(static_cast<int>(outcomes.size()), n);
  for (int r = 0; r < n; ++r) {
    const app::Outcome& o = outcomes[static_cast<std::size_t>(r)];
    EXPECT_EQ(o.rank, r);
    EXPECT_EQ(o.size, n);
    EXPECT_EQ(o.sum, n * (n - 1) / 2 + 5L * n);
    EXPECT_DOUBLE_EQ(o.max, (n - 1) * 1.5);
    EXPECT_EQ(o.elementwise, (std::vector<double>{n * (n - 1) / 2.0, 2.0 * n}));
    std::string concatenated;
    for (int i = 0; i < n; ++i) concatenated += std::to_string(i);
    EXPECT_EQ(o.concatenated, concatenated);
    std::vector<int> tens, ranks;
    for (int i = 0; i < n; ++i) {
      tens.push_back(i * 10);
      ranks.push_back(i);
    }
    EXPECT_EQ(o.allgathered, tens);
    EXPECT_EQ(o.gathered, r == n - 1 ? ranks : std::vector<int>{});
    EXPECT_EQ(o.scattered, 100 + r);
    EXPECT_EQ(o.broadcast, (app::Labelled{"root " + std::to_string(n - 1), {5}}));
    const int left = (r + n - 1) % n;
    EXPECT_EQ(o.from_left, (app::Labelled{"from " + std::to_string(left), {left, left}}));
    EXPECT_EQ(o.reduced_here, r == 0);
    EXPECT_EQ(o.reduced, r == 0 ? n * (n - 1) / 2 : -1);
    EXPECT_EQ(o.point_x, 42);
  }
}

class SpmdCancellation : public ::testing::TestWithParam<std::string> {};

TEST_P(SpmdCancellation, AFailureReleasesTheOthersAndOnlyItIsReported) {
  const int n = workers();
  const auto start = std::chrono::steady_clock::now();
  try {
    parc::Spmd(*runtime).run(app::fail_while_others_wait, n - 1, GetParam());
    FAIL() << "the region did not raise";
  } catch (const parc::ParallelException& e) {
    ASSERT_EQ(e.size(), 1u);  // the released ranks are not failures
    const parc::TaskError& error = e.errors().front();
    EXPECT_EQ(error.type_name(), "app::Boom");
    EXPECT_EQ(error.message(), "rank " + std::to_string(n - 1) + " failed");
    EXPECT_EQ(error.input_index(), n - 1);  // the region rank
    EXPECT_THROW(error.rethrow(), app::Boom);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  // The runtime stays usable: another region, and a farm.
  EXPECT_EQ(parc::Spmd(*runtime).run(app::world_rank_sum, 0),
            std::vector<int>(static_cast<std::size_t>(n), n * (n - 1) / 2));
  parc::TaskFarm farm(*runtime);
  EXPECT_EQ(farm.map(app::plain, std::vector<int>{1, 2, 3}), (std::vector<int>{1, 2, 3}));
}

INSTANTIATE_TEST_SUITE_P(Waits, SpmdCancellation,
                         ::testing::Values("allreduce", "barrier", "recv"));

TEST(Spmd, TimeoutReleasesRanksBlockedInARecv) {
  parc::SpmdOptions options;
  options.timeout = std::chrono::duration<double>(0.5);
  const auto start = std::chrono::steady_clock::now();
  try {
    parc::Spmd(*runtime, options).run(app::recv_forever);
    FAIL() << "the region did not time out";
  } catch (const parc::ParallelException& e) {
    ASSERT_EQ(e.size(), 1u);
    EXPECT_EQ(e.errors().front().type_name(), "parc::TaskTimeout");
    EXPECT_THROW(e.errors().front().rethrow(), parc::TaskTimeout);
  }
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, std::chrono::milliseconds(500));
  EXPECT_LT(took, std::chrono::seconds(8));
  const int n = workers();
  EXPECT_EQ(parc::Spmd(*runtime).run(app::world_rank_sum, 1),
            std::vector<int>(static_cast<std::size_t>(n), n * (n - 1) / 2 + 1));
}

TEST(Spmd, ARegionOnSomeWorkersRunsBesideAFarmOnTheOthers) {
  if (runtime->serial() || workers() < 3) GTEST_SKIP() << "needs 3 MPI workers";
  parc::SpmdOptions options;
  options.ranks = {1, 2};
  auto region = parc::Spmd(*runtime, options).submit(app::hostpid);
  parc::TaskFarm farm(*runtime);
  std::vector<int> inputs(20, 0);
  const auto pids = farm.map(app::pid_of_task, inputs);
  EXPECT_FALSE(region.ready());  // the farm finished while the region still ran
  EXPECT_EQ(std::set<int>(pids.begin(), pids.end()).size(), 1u);
  EXPECT_EQ(region.get(), (std::vector<int>{0, 1}));
}

TEST(Spmd, WaitingForARankThatReturnedFailsInsteadOfHanging) {
  if (workers() < 2) GTEST_SKIP() << "needs a region of 2 ranks";
  for (bool in_collective : {true, false}) {
    try {
      parc::Spmd(*runtime).run(app::deserts, in_collective);
      FAIL() << "no error";
    } catch (const parc::ParallelException& e) {
      // A waiting rank that sees it first fails, which may release the others first.
      ASSERT_GE(e.size(), 1u);
      for (const auto& error : e.errors()) {
        EXPECT_EQ(error.type_name(), "parc::UsageError");
        EXPECT_NE(error.message().find(in_collective ? "same collectives" : "(tag 7)"),
                  std::string::npos)
            << error.message();
      }
    }
  }
}

TEST(Spmd, BadRanksAreUsageErrors) {
  parc::SpmdOptions options;
  options.ranks = {0};
  EXPECT_THROW(parc::Spmd(*runtime, options).run(app::world_rank_sum, 0), parc::UsageError);
  options.ranks = {1, 1};
  EXPECT_THROW(parc::Spmd(*runtime, options).run(app::world_rank_sum, 0), parc::UsageError);
  options.ranks = {workers() + 1};
  EXPECT_THROW(parc::Spmd(*runtime, options).run(app::world_rank_sum, 0), parc::UsageError);
}

TEST(Spmd, AnSpmdClosureSubmittedToAFarmFailsClearly) {
  parc::TaskFarm farm(*runtime);
  try {
    farm.submit(app::world_rank_sum, 1).get();
    FAIL() << "no error";
  } catch (const parc::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("parc::Spmd::run"), std::string::npos);
  }
}

}  // namespace
