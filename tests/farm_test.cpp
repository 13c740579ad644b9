#include "support/runtime_main.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <mutex>
#include <numeric>
#include <ranges>
#include <set>
#include <thread>
#include <tuple>

namespace app {

struct BadInput : std::runtime_error {
  using std::runtime_error::runtime_error;
};
PARC_REGISTER_EXCEPTION(BadInput);

struct Unregistered : std::runtime_error {
  using std::runtime_error::runtime_error;
};

int square(int x) { return x * x; }
PARC_CLOSURE(square);

long add3(int a, long b, double c) { return a + b + static_cast<long>(c); }
PARC_CLOSURE(add3);

int fail_on_multiples_of_3(int x) {
  if (x % 3 == 0) throw BadInput("multiple of three: " + std::to_string(x));
  return x;
}
PARC_CLOSURE(fail_on_multiples_of_3);

int throw_kind(int kind) {
  switch (kind) {
    case 0:
      throw Unregistered("not registered");
    case 1:
      try {
        throw std::out_of_range("inner index");
      } catch (...) {
        std::throw_with_nested(BadInput("outer"));
      }
    case 2:
      throw 42;
    default:
      return kind;
  }
}
PARC_CLOSURE(throw_kind);

// pid of the worker process, after sleeping `ms` milliseconds; a negative `ms` fails.
std::int64_t sleep_then_pid(int ms) {
  if (ms < 0) throw BadInput("negative sleep: " + std::to_string(ms));
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return static_cast<std::int64_t>(getpid());
}
PARC_CLOSURE(sleep_then_pid);

// Fails the first time each worker process sees a key: a retry on any worker may fail
// once more, so `workers + 1` attempts always suffice.
int flaky(int key) {
  static std::set<int> seen;
  if (seen.insert(key).second) throw std::runtime_error("first attempt on this worker");
  return key;
}
PARC_CLOSURE(flaky);

// A checksum of `data` that fails the first time a worker sees `key`: retried, the
// large arguments must be sent again intact.
std::uint64_t flaky_checksum(int key, std::vector<std::uint32_t> data) {
  static std::set<int> seen;
  if (key % 3 == 0 && seen.insert(key).second) throw std::runtime_error("first attempt");
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < data.size(); ++i) sum += data[i] * (i + 1);
  return sum;
}
PARC_CLOSURE(flaky_checksum);

bool is_even(int x) { return x % 2 == 0; }
PARC_CLOSURE(is_even);

void nothing(int) {}
PARC_CLOSURE(nothing);

inline constexpr auto negate = [](int x) { return -x; };
PARC_CLOSURE(negate);

// Arguments and results cross the serializer even in serial mode: this type counts it.
struct Counted {
  int value = 0;
  static inline int encodings = 0;
  template <class A>
  void save(A& ar) const {
    ++encodings;
    ar(value);
  }
  template <class A>
  void load(A& ar) {
    ar(value);
  }
  Counted() = default;
  explicit Counted(int v) : value(v) {}
  Counted(const Counted&) = default;
  Counted& operator=(const Counted&) = default;
  ~Counted() {}  // not trivially copyable: goes through cereal
};
Counted increment(Counted c) { return Counted(c.value + 1); }
PARC_CLOSURE(increment);

// Execution order log, meaningful only in serial mode (same process as the manager).
std::vector<int>& executed() {
  static std::vector<int> log;
  return log;
}
int record(int x) {
  executed().push_back(x);
  return x;
}
PARC_CLOSURE(record);

int undeclared(int x) { return x; }

}  // namespace app

namespace {

parc::Runtime& rt() { return *parc::test::runtime; }

std::size_t peak_rss_kib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.starts_with("VmHWM:")) return std::stoul(line.substr(6));
  }
  return 0;
}

TEST(TaskFarm, SubmitReturnsAFuture) {
  parc::TaskFarm farm(rt());
  parc::Future<int> f = farm.submit(app::square, 7);
  EXPECT_TRUE(f.valid());
  f.wait();
  EXPECT_TRUE(f.ready());
  EXPECT_EQ(f.get(), 49);
  EXPECT_EQ(farm.submit(app::add3, 1, 2L, 3.0).get(), 6);
  EXPECT_EQ(farm.submit(app::negate, 5).get(), -5);
  auto v = farm.submit(app::nothing, 1);
  v.get();
  auto once = farm.submit(app::square, 2);
  EXPECT_EQ(once.get(), 4);
  EXPECT_THROW(once.get(), parc::UsageError);  // the value was moved out
}

TEST(TaskFarm, MapOverBooleans) {
  parc::TaskFarm farm(rt());
  EXPECT_EQ(farm.map(app::is_even, std::vector<int>{1, 2, 3, 4}),
            (std::vector<bool>{false, true, false, true}));
}

TEST(TaskFarm, MapKeepsInputOrder) {
  parc::TaskFarm farm(rt());
  std::vector<int> xs(1000);
  std::iota(xs.begin(), xs.end(), 0);
  auto ys = farm.map(app::square, xs);
  ASSERT_EQ(ys.size(), xs.size());
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(ys[static_cast<std::size_t>(i)], i * i);
  EXPECT_TRUE(farm.map(app::square, std::vector<int>{}).empty());
}

TEST(TaskFarm, MapSpreadsTuplesAndTakesLazyRanges) {
  parc::TaskFarm farm(rt());
  auto calls = std::views::iota(0, 50) | std::views::transform([](int i) {
                 return std::tuple{i, long{i}, 0.5};
               });
  auto sums = farm.map(app::add3, calls);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(sums[static_cast<std::size_t>(i)], 2 * i);
}

TEST(TaskFarm, SubmitBatchAndAsCompleted) {
  parc::TaskFarm farm(rt());
  std::vector<std::tuple<int>> calls;
  for (int i = 0; i < 40; ++i) calls.emplace_back(i);
  auto futures = farm.submit_batch(app::square, calls);
  ASSERT_EQ(futures.size(), 40u);
  std::multiset<int> seen;
  for (auto& f : parc::as_completed(futures)) {
    EXPECT_TRUE(f.ready());
    seen.insert(f.get());
  }
  EXPECT_EQ(seen.size(), 40u);
  for (int i = 0; i < 40; ++i) EXPECT_EQ(seen.count(i * i), 1u);
}

TEST(TaskFarm, WaitAllGroupsTheFailures) {
  parc::TaskFarm farm(rt(), parc::Policy::collect_all);
  std::vector<parc::Future<int>> futures;
  for (int i = 1; i <= 9; ++i) futures.push_back(farm.submit(app::fail_on_multiples_of_3, i));
  try {
    parc::wait_all(futures);
    FAIL() << "no exception";
  } catch (const parc::ParallelException& e) {
    EXPECT_EQ(e.size(), 3u);
  }
  EXPECT_EQ(futures[0].get(), 1);
  EXPECT_THROW(futures[2].get(), app::BadInput);
}

TEST(Exceptions, CollectAllReportsEveryFailureWithWhereItHappened) {
  parc::TaskFarm farm(rt(), parc::Policy::collect_all);
  std::vector<int> xs(30);
  std::iota(xs.begin(), xs.end(), 1);
  try {
    farm.map(app::fail_on_multiples_of_3, xs);
    FAIL() << "no exception";
  } catch (const parc::ParallelException& e) {
    ASSERT_EQ(e.errors().size(), 10u);
    std::set<std::string> messages;
    for (const parc::TaskError& error : e.errors()) {
      EXPECT_EQ(error.type_name(), "app::BadInput");
      EXPECT_EQ(error.closure(), "fail_on_multiples_of_3");
      EXPECT_GE(error.rank(), 1);
      EXPECT_LE(error.rank(), rt().workers());
      EXPECT_FALSE(error.host().empty());
      EXPECT_GT(error.pid(), 0);
      EXPECT_GT(error.task_id(), 0u);
      EXPECT_THROW(error.rethrow(), app::BadInput);
      messages.insert(error.message());
    }
    EXPECT_TRUE(messages.count("multiple of three: 30"));
    for (const parc::TaskError& error : e.errors()) {
      EXPECT_EQ(xs[static_cast<std::size_t>(error.input_index())] % 3, 0);  // which input failed
    }
    EXPECT_EQ(e.errors()[0].input_index(), 2);
    EXPECT_NE(std::string(e.what()).find("10 tasks failed"), std::string::npos);
  }
}

TEST(Exceptions, FailFastRaisesEarlyAndCancelsTheRest) {
  parc::TaskFarm farm(rt());  // fail_fast is the default
  std::vector<int> xs(2000, 1);
  xs[5] = 3;  // fails
  try {
    farm.map(app::fail_on_multiples_of_3, xs);
    FAIL() << "no exception";
  } catch (const parc::ParallelException& e) {
    ASSERT_GE(e.size(), 1u);
    EXPECT_EQ(e.errors()[0].message(), "multiple of three: 3");
  }
  farm.shutdown();  // waits for what was already running; nothing left behind
  parc::TaskFarm next(rt());
  EXPECT_EQ(next.submit(app::square, 3).get(), 9);  // the runtime is still usable
}

TEST(Exceptions, FailFastCancelsQueuedFutures) {
  parc::TaskFarm farm(rt());
  // One batch, queued at once: the failure cannot come back before its siblings are
  // queued (separate submits may race it, and those after it belong to the next
  // generation, which runs). 50 ms each: the workers cannot run half of them first.
  std::vector<std::tuple<int>> calls(201, std::tuple<int>{50});
  calls[0] = std::tuple<int>{-1};
  auto futures = farm.submit_batch(app::sleep_then_pid, calls);
  EXPECT_THROW(futures[0].get(), app::BadInput);
  int cancelled = 0;
  for (std::size_t i = 1; i < futures.size(); ++i) {
    futures[i].wait();
    if (futures[i].cancelled()) {
      ++cancelled;
      EXPECT_THROW(futures[i].get(), parc::CancelledError);
    }
  }
  EXPECT_GT(cancelled, 100);
}

// A C++ farm goes on after a fail_fast failure (later submits are the next generation);
// an operation fed as results come back (Python's map, submit_batch) does not.
TEST(Exceptions, StopAfterFailureCancelsLaterSubmits) {
  parc::FarmOptions options;
  options.stop_after_failure = true;
  parc::TaskFarm stopping(rt(), options);
  EXPECT_THROW(stopping.submit(app::fail_on_multiples_of_3, 3).get(), app::BadInput);
  auto later = stopping.submit(app::square, 2);
  later.wait();
  EXPECT_TRUE(later.cancelled());
  EXPECT_THROW(later.get(), parc::CancelledError);

  parc::TaskFarm going_on(rt());
  EXPECT_THROW(going_on.submit(app::fail_on_multiples_of_3, 3).get(), app::BadInput);
  EXPECT_EQ(going_on.submit(app::square, 2).get(), 4);
}

TEST(Exceptions, UnregisteredNestedAndNonStdFailures) {
  parc::TaskFarm farm(rt(), parc::Policy::collect_all);
  try {
    farm.map(app::throw_kind, std::vector<int>{0, 1, 2, 3});
    FAIL();
  } catch (const parc::ParallelException& e) {
    ASSERT_EQ(e.size(), 3u);
    std::map<std::string, const parc::TaskError*> by_type;
    for (const auto& error : e.errors()) by_type[error.type_name()] = &error;

    ASSERT_TRUE(by_type.count("app::Unregistered"));
    EXPECT_THROW(by_type["app::Unregistered"]->rethrow(), parc::RemoteError);

    ASSERT_TRUE(by_type.count("app::BadInput"));
    const auto& nested = *by_type["app::BadInput"];
    ASSERT_EQ(nested.info().chain.size(), 2u);
    EXPECT_EQ(nested.info().chain[1].type_name, "std::out_of_range");
    try {
      nested.rethrow();
    } catch (const app::BadInput& outer) {
      EXPECT_THROW(std::rethrow_if_nested(outer), std::out_of_range);
    }

    ASSERT_TRUE(by_type.count("int"));
    try {
      by_type["int"]->rethrow();
    } catch (const parc::RemoteError& remote) {
      EXPECT_FALSE(remote.is_std_exception());
      EXPECT_EQ(remote.message(), "42");
    }
  }
}

TEST(Policies, RetriesRecoverTransientFailures) {
  parc::FarmOptions options;
  options.retries = rt().workers() + 1;
  parc::TaskFarm farm(rt(), options);
  std::vector<int> keys{1001, 1002, 1003, 1004};
  EXPECT_EQ(farm.map(app::flaky, keys), keys);
}

TEST(Policies, RetryOnlyTheGivenTypes) {
  parc::FarmOptions options;
  options.retries = 5;
  options.retry_on = parc::retry_on<app::BadInput>();  // flaky throws std::runtime_error
  options.policy = parc::Policy::collect_all;
  parc::TaskFarm farm(rt(), options);
  try {
    farm.map(app::flaky, std::vector<int>{2001});
    FAIL();
  } catch (const parc::ParallelException& e) {
    ASSERT_EQ(e.size(), 1u);
    EXPECT_EQ(e.errors()[0].info().attempts, 1);
  }
  options.retry_on = parc::retry_on<std::runtime_error>();
  options.retries = 0;
  parc::TaskFarm no_retries(rt(), options);
  EXPECT_THROW(no_retries.map(app::flaky, std::vector<int>{2002}), parc::ParallelException);
}

TEST(Policies, TimeoutReportsTheTaskThatRanTooLong) {
  parc::FarmOptions options;
  options.policy = parc::Policy::collect_all;
  options.timeout = std::chrono::milliseconds(300);
  parc::TaskFarm farm(rt(), options);
  try {
    farm.map(app::sleep_then_pid, std::vector<int>{1, 1500, 1});
    FAIL() << "no timeout";
  } catch (const parc::ParallelException& e) {
    ASSERT_EQ(e.size(), 1u);
    const auto& error = e.errors()[0];
    EXPECT_EQ(error.type_name(), "parc::TaskTimeout");
    EXPECT_EQ(error.closure(), "sleep_then_pid");
    EXPECT_GE(error.rank(), 1);
    EXPECT_NE(error.message().find("timeout"), std::string::npos) << error.message();
    EXPECT_THROW(error.rethrow(), parc::TaskTimeout);
    EXPECT_FALSE(error.host().empty());
    EXPECT_GT(error.pid(), 0);
    EXPECT_EQ(error.input_index(), 1);
  }
  // The worker still runs the task; once it returns, the worker serves again.
  auto& engine = rt().engine();
  engine.wait_until([&] { return engine.scheduler().stuck_workers().empty(); });
  EXPECT_EQ(farm.submit(app::square, 4).get(), 16);
}

// The scheduler sizes batches by a closure's mean run time, which earlier tests left
// at whatever they ran: set it to the short tasks' `ms`, so that each goes alone (a
// batch holding the long task and short ones is not what these tests are about).
void prime_mean_run_time(parc::TaskFarm& farm, int ms) {
  farm.map(app::sleep_then_pid, std::vector<int>(static_cast<std::size_t>(2 * rt().workers()), ms));
}

TEST(LoadBalancing, NoWorkerIdlesWhileTasksAreQueued) {
  if (rt().serial() || rt().workers() < 2) GTEST_SKIP() << "needs two MPI workers";
  parc::TaskFarm farm(rt());
  prime_mean_run_time(farm, 20);
  // One long task, then short ones that together take less than it: the worker that
  // took the long task must get none of the short ones.
  std::vector<int> ms{1500};
  for (int i = 0; i < 24; ++i) ms.push_back(20);
  auto pids = farm.map(app::sleep_then_pid, ms);
  const auto long_pid = pids[0];
  int short_on_long_worker = 0;
  std::set<std::int64_t> workers_used;
  for (std::size_t i = 1; i < pids.size(); ++i) {
    workers_used.insert(pids[i]);
    if (pids[i] == long_pid) ++short_on_long_worker;
  }
  EXPECT_EQ(short_on_long_worker, 0);
  EXPECT_EQ(static_cast<int>(workers_used.size()), rt().workers() - 1);
}

// Every batch goes ahead to a worker that has one running (no round trip between
// tasks); the one sent ahead to the worker stuck in a long task comes back for a worker
// that ran out of work, before it started, so it runs once, elsewhere.
TEST(LoadBalancing, BatchesSentAheadAreTakenBackForIdleWorkers) {
  if (rt().serial() || rt().workers() < 2) GTEST_SKIP() << "needs two MPI workers";
  parc::TaskFarm farm(rt());
  prime_mean_run_time(farm, 20);
  const auto before = rt().scheduler().counters();
  std::vector<int> ms{1500};
  for (int i = 0; i < 12; ++i) ms.push_back(20);
  auto pids = farm.map(app::sleep_then_pid, ms);
  const auto after = rt().scheduler().counters();
  EXPECT_EQ(std::count(pids.begin() + 1, pids.end(), pids[0]), 0);
  EXPECT_GE(after.revokes_sent - before.revokes_sent, 1u);
  EXPECT_GE(after.batches_given_back - before.batches_given_back, 1u);
  EXPECT_GT(after.tasks_sent - before.tasks_sent, ms.size());  // given back, sent again
}

TEST(Batching, SmallTasksTravelInBatches) {
  parc::TaskFarm farm(rt());
  const auto before = rt().scheduler().counters();
  auto ys = farm.map(app::negate, std::views::iota(0, 200'000));
  EXPECT_EQ(ys[199'999], -199'999);
  const auto after = rt().scheduler().counters();
  const auto tasks = after.tasks_sent - before.tasks_sent;
  const auto batches = after.batches_sent - before.batches_sent;
  // Each input once, unless a batch sent ahead was given back to an idle worker at the end.
  if (after.batches_given_back == before.batches_given_back) {
    EXPECT_EQ(tasks, 200'000u);
  } else {
    EXPECT_GT(tasks, 200'000u);
  }
  EXPECT_LT(batches, tasks / 20) << batches << " batches";  // microsecond tasks: many per batch
}

// Arguments of 64 KiB and more travel after their batch's frame instead of inside it:
// mixed with small ones in one map, retried, they still arrive intact and in order.
TEST(Batching, LargeArgumentsArriveIntactAmongSmallOnes) {
  parc::FarmOptions options;
  options.retries = rt().workers() + 1;
  parc::TaskFarm farm(rt(), options);
  std::vector<std::tuple<int, std::vector<std::uint32_t>>> inputs;
  std::vector<std::uint64_t> expected;
  for (int key = 0; key < 40; ++key) {
    const std::size_t n = key % 4 == 1 ? 300'000 + static_cast<std::size_t>(key) : 10;
    std::vector<std::uint32_t> data(n);
    for (std::size_t i = 0; i < n; ++i) data[i] = static_cast<std::uint32_t>(i * 31 + key);
    std::uint64_t sum = 0;
    for (std::size_t i = 0; i < n; ++i) sum += data[i] * (i + 1);
    expected.push_back(sum);
    inputs.emplace_back(key + 5000, std::move(data));
  }
  EXPECT_EQ(farm.map(app::flaky_checksum, inputs), expected);
}

TEST(Batching, LongTasksTravelOneByOne) {
  parc::TaskFarm farm(rt());
  farm.map(app::sleep_then_pid, std::vector<int>(4, 3));  // learn that the closure is slow
  const auto before = rt().scheduler().counters();
  farm.map(app::sleep_then_pid, std::vector<int>(12, 3));
  const auto after = rt().scheduler().counters();
  if (!rt().serial()) {
    EXPECT_EQ(after.batches_sent - before.batches_sent, 12u);
  }
}

TEST(Streaming, MapOverTenMillionIntsRunsInBoundedMemory) {
  parc::TaskFarm farm(rt());
  const std::size_t before = peak_rss_kib();
  const int n = 10'000'000;
  auto ys = farm.map(app::negate, std::views::iota(0, n));
  ASSERT_EQ(ys.size(), static_cast<std::size_t>(n));
  EXPECT_EQ(ys[123456], -123456);
  EXPECT_EQ(ys.back(), -(n - 1));
  const std::size_t growth_mib = (peak_rss_kib() - before) / 1024;
  // 10^7 results take 40 MiB (plus vector growth); 10^7 queued tasks would take > 1 GiB.
#if defined(__SANITIZE_ADDRESS__)
  const std::size_t bound_mib = 300 + 256;  // ASan's quarantine holds 256 MiB of freed memory
#else
  const std::size_t bound_mib = 300;
#endif
  EXPECT_LT(growth_mib, bound_mib) << "peak RSS grew by " << growth_mib << " MiB";
}

TEST(Serial, ArgumentsAndResultsCrossTheSerializer) {
  parc::TaskFarm farm(rt());
  const int before = app::Counted::encodings;
  EXPECT_EQ(farm.submit(app::increment, app::Counted(1)).get().value, 2);
  if (rt().serial()) {
    EXPECT_EQ(app::Counted::encodings - before, 2);  // argument and result
  }
}

TEST(Serial, TaskOrderIsDeterministic) {
  if (!rt().serial()) GTEST_SKIP() << "serial mode only";
  parc::TaskFarm farm(rt());
  std::vector<int> xs(500);
  std::iota(xs.begin(), xs.end(), 0);
  app::executed().clear();
  farm.map(app::record, xs);
  const auto first = app::executed();
  app::executed().clear();
  farm.map(app::record, xs);
  EXPECT_EQ(app::executed(), first);
  EXPECT_EQ(first.size(), xs.size());
}

TEST(Usage, UndeclaredFunctionIsAClearError) {
  parc::TaskFarm farm(rt());
  try {
    farm.submit(app::undeclared, 1);
    FAIL();
  } catch (const parc::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("app::undeclared"), std::string::npos) << e.what();
  }
}

TEST(Usage, SubmitAfterShutdownIsAnError) {
  parc::TaskFarm farm(rt());
  farm.shutdown();
  EXPECT_THROW(farm.submit(app::square, 1), parc::UsageError);
  EXPECT_THROW(farm.map(app::square, std::vector<int>{1}), parc::UsageError);
  parc::FarmOptions bad;
  bad.retries = -1;
  EXPECT_THROW(parc::TaskFarm(rt(), bad), parc::UsageError);
}

// Rank 0's progress engine drives the scheduler while the test's thread does not call parc.
TEST(Engine, FuturesFinishWhileRank0Computes) {
  parc::TaskFarm farm(rt());
  const int n = 4 * std::max(1, rt().workers());  // more than workers hold ahead (2 each)
  std::vector<parc::Future<std::int64_t>> futures;
  std::atomic<int> called{0};
  for (int i = 0; i < n; ++i) {
    futures.push_back(farm.submit(app::sleep_then_pid, 20));
    futures.back().add_done_callback([&](parc::Future<std::int64_t>& f) {
      EXPECT_FALSE(f.pending());
      ++called;
    });
  }
  // pending() only reads the state: nothing here drives the scheduler.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  auto unfinished = [&] {
    return std::count_if(futures.begin(), futures.end(), [](auto& f) { return f.pending(); });
  };
  while ((unfinished() > 0 || called < n) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(unfinished(), 0);
  EXPECT_EQ(called.load(), n);
  for (auto& f : futures) EXPECT_GT(f.get(), 0);
}

TEST(Engine, CallbacksMaySubmitAndWait) {
  parc::TaskFarm farm(rt());
  std::mutex mutex;
  std::vector<int> squares_of_squares;
  std::vector<parc::Future<int>> futures;
  for (int i = 1; i <= 10; ++i) {
    futures.push_back(farm.submit(app::square, i));
    futures.back().add_done_callback([&](parc::Future<int>& f) {
      const int y = farm.submit(app::square, f.get()).get();  // a wait inside a callback
      std::lock_guard lock(mutex);
      squares_of_squares.push_back(y);
    });
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  auto count = [&] {
    std::lock_guard lock(mutex);
    return squares_of_squares.size();
  };
  while (count() < 10 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::lock_guard lock(mutex);
  std::sort(squares_of_squares.begin(), squares_of_squares.end());
  std::vector<int> expected;
  for (int i = 1; i <= 10; ++i) expected.push_back(i * i * i * i);
  EXPECT_EQ(squares_of_squares, expected);
}

TEST(Engine, CallbackOnAFinishedFutureRunsAtOnceOnTheCaller) {
  parc::TaskFarm farm(rt());
  auto f = farm.submit(app::square, 3);
  f.wait();
  std::thread::id ran_on;
  f.add_done_callback([&](parc::Future<int>& done) {
    ran_on = std::this_thread::get_id();
    EXPECT_EQ(done.get(), 9);
  });
  EXPECT_EQ(ran_on, std::this_thread::get_id());
}

TEST(Engine, FarmsAndFuturesServeSeveralThreads) {
  parc::TaskFarm farm(rt(), parc::Policy::collect_all);
  std::vector<std::thread> threads;
  std::vector<int> wrong(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      if (t == 0) {  // a map alongside submits
        std::vector<int> xs(2000);
        std::iota(xs.begin(), xs.end(), 0);
        const auto ys = farm.map(app::square, xs);
        for (int i = 0; i < 2000; ++i) wrong[0] += ys[static_cast<std::size_t>(i)] != i * i;
        return;
      }
      std::vector<parc::Future<int>> futures;
      for (int i = 0; i < 100; ++i) futures.push_back(farm.submit(app::square, t * 1000 + i));
      for (int i = 0; i < 100; ++i) {
        wrong[static_cast<std::size_t>(t)] +=
            futures[static_cast<std::size_t>(i)].get() != (t * 1000 + i) * (t * 1000 + i);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(wrong, std::vector<int>(4, 0));
}

}  // namespace
