// C++ proxies: objects owned by one rank, called from rank 0, from farm tasks and from
// other proxied objects. Rank 0 runs the tests inside Runtime::run; the other ranks work
// and own objects. Serially (np1, serial3) the owners are simulated in one process.

#include "support/runtime_main.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace app {

// Not copyable (a mutex): it lives at its owner and is only ever called there.
class Counter {
 public:
  Counter() = default;
  explicit Counter(int start) : total_(start) {}
  Counter(std::string label, int start) : label_(std::move(label)), total_(start) {
    if (start < 0) throw std::invalid_argument("a counter starts at 0 or more");
  }

  int add(int n) {
    ++calls;
    std::lock_guard lock(mutex_);
    total_ += n;
    return total_;
  }
  int total() const {
    std::lock_guard lock(mutex_);
    return total_;
  }
  std::string label() const { return label_; }
  void reset() {
    std::lock_guard lock(mutex_);
    total_ = 0;
  }
  int at(int index) const { return std::vector<int>{1, 2, 3}.at(static_cast<std::size_t>(index)); }
  int unregistered() const { return 0; }

  std::atomic<int> calls{0};  // read with Proxy::read

 private:
  mutable std::mutex mutex_;
  std::string label_ = "counter";
  int total_ = 0;
};

// Copyable and serializable: resolve() brings a copy back.
struct Tally {
  std::string name;
  std::vector<int> bins;
  void bump(int bin) { bins.at(static_cast<std::size_t>(bin)) += 1; }
  template <class Archive>
  void serialize(Archive& archive) {
    archive(name, bins);
  }
};

// Holds a proxy to a Counter elsewhere: its methods call that proxy from the owner's
// progress thread.
class Ledger {
 public:
  Ledger() = default;
  explicit Ledger(parc::Proxy<Counter> counter) : counter_(std::move(counter)) {}
  int deposit(int amount) { return counter_.invoke(&Counter::add, amount).get(); }
  parc::Proxy<Counter> counter() const { return counter_; }
  // A proxy as a method's argument.
  int total_of(parc::Proxy<Counter> other) const { return other.invoke(&Counter::total).get(); }

 private:
  parc::Proxy<Counter> counter_;
};

// One-sided progress: the owner's main thread is kept busy in a task while others call.
class Gate {
 public:
  void mark_started() { started_ = true; }
  bool started() const { return started_; }
  bool is_open() const { return open_; }
  int open() {
    open_ = true;
    return ++stamp_;
  }
  int stamp() { return ++stamp_; }

 private:
  std::atomic<bool> started_{false};
  std::atomic<bool> open_{false};
  std::atomic<int> stamp_{0};
};

struct NotAProxyType {
  int value = 0;
};

}  // namespace app

PARC_PROXY_TYPE(app::Counter, &app::Counter::add, &app::Counter::total, &app::Counter::label,
                &app::Counter::reset, &app::Counter::at, &app::Counter::calls);
PARC_PROXY_TYPE(app::Tally, &app::Tally::bump);
PARC_PROXY_TYPE(app::Ledger, &app::Ledger::deposit, &app::Ledger::counter, &app::Ledger::total_of);
PARC_PROXY_TYPE(app::Gate, &app::Gate::mark_started, &app::Gate::started, &app::Gate::is_open,
                &app::Gate::open, &app::Gate::stamp);

namespace {

using app::Counter;
using parc::Proxy;

parc::Runtime& rt() { return *parc::test::runtime; }
int last_owner() { return rt().proxies().owners() - 1; }

int add_through(Proxy<Counter> counter, int amount) {
  return counter.invoke(&Counter::add, amount).get();
}
PARC_CLOSURE(add_through);

Proxy<Counter> echo(Proxy<Counter> counter) { return counter; }
PARC_CLOSURE(echo);

// Built on the worker that runs the task, returned to the caller.
Proxy<Counter> counter_here(int start) {
  return parc::make_proxy<Counter>(parc::proxy_rank(), start);
}
PARC_CLOSURE(counter_here);

// Keeps the owner busy in a task for at least 300 ms and until the gate opens (at most 30 s),
// then says whether it opened meanwhile and takes the next stamp.
std::vector<int> busy_owner(Proxy<app::Gate> gate) {
  app::Gate* here = gate.local();
  if (here == nullptr) throw std::logic_error("the task did not run at the gate's owner");
  here->mark_started();
  const auto start = std::chrono::steady_clock::now();
  while (
      std::chrono::steady_clock::now() - start < std::chrono::milliseconds(300) ||
      (!here->is_open() && std::chrono::steady_clock::now() - start < std::chrono::seconds(30))) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return {here->is_open() ? 1 : 0, here->stamp()};
}
PARC_CLOSURE(busy_owner);

TEST(Proxy, TypesAndMembersAreInTheClosureTableRanksCompare) {
  const std::string table = parc::detail::ClosureRegistry::instance().table_text();
  EXPECT_NE(table.find("parc::Proxy<app::Counter> : proxy { add: int (app::Counter::*)(int), "
                       "total: int (app::Counter::*)() const,"),
            std::string::npos)
      << table;
  EXPECT_NE(table.find("parc::Proxy<app::Tally> : proxy { bump: "), std::string::npos) << table;
}

TEST(Proxy, InvokesAtTheOwnerFromRankZero) {
  auto counter = parc::make_proxy<Counter>(rt(), last_owner(), "tally", 10);
  EXPECT_EQ(counter.owner(), last_owner());
  EXPECT_FALSE(counter.is_local());
  EXPECT_EQ(counter.local(), nullptr);
  EXPECT_EQ(counter.invoke(&Counter::add, 5).get(), 15);
  counter.invoke(&Counter::add, 1);  // calls from one thread to one owner run in order
  EXPECT_EQ(counter.invoke(&Counter::total).get(), 16);
  EXPECT_EQ(counter.invoke(&Counter::label).get(), "tally");
  counter.invoke(&Counter::reset).get();
  EXPECT_EQ(counter.invoke(&Counter::total).get(), 0);
  EXPECT_EQ(counter.read(&Counter::calls).get(), 2);
}

TEST(Proxy, LocalObjectsAreCalledDirectly) {
  auto counter = parc::make_proxy<Counter>(rt(), 0, 1);
  ASSERT_TRUE(counter.is_local());
  ASSERT_NE(counter.local(), nullptr);
  auto sum = counter.invoke(&Counter::add, 2);
  EXPECT_TRUE(sum.ready());  // no network: done before invoke returns
  EXPECT_EQ(sum.get(), 3);
  EXPECT_EQ(counter.local()->total(), 3);
  auto failed = counter.invoke(&Counter::at, 9);
  EXPECT_THROW(failed.get(), std::out_of_range);
  EXPECT_EQ(failed.error()->rank(), 0);
}

TEST(Proxy, WaitAllAndAsCompletedTakeCallFutures) {
  auto counter = parc::make_proxy<Counter>(rt(), last_owner(), 0);
  std::vector<parc::Future<int>> sums;
  for (int i = 1; i <= 10; ++i) sums.push_back(counter.invoke(&Counter::add, i));
  parc::wait_all(sums);
  int seen = 0;
  for (auto& sum : parc::as_completed(sums)) {
    EXPECT_GE(sum.get(), 1);
    ++seen;
  }
  EXPECT_EQ(seen, 10);
  EXPECT_EQ(counter.invoke(&Counter::total).get(), 55);
}

TEST(Proxy, FarmTasksTakeProxiesAsArguments) {
  auto counter = parc::make_proxy<Counter>(rt(), last_owner(), 0);
  std::vector<std::tuple<Proxy<Counter>, int>> calls;
  for (int i = 1; i <= 40; ++i) calls.emplace_back(counter, i);
  parc::TaskFarm farm(rt());
  const auto partial = farm.map(add_through, calls);
  EXPECT_EQ(partial.size(), 40u);
  EXPECT_EQ(counter.invoke(&Counter::total).get(), 40 * 41 / 2);
  auto single = farm.submit(add_through, counter, 1000);
  EXPECT_EQ(single.get(), 40 * 41 / 2 + 1000);
}

TEST(Proxy, RemoteExceptionsArriveWithTheirTypeAndTheOwnersRank) {
  auto counter = parc::make_proxy<Counter>(rt(), last_owner(), 0);
  auto failed = counter.invoke(&Counter::at, 7);
  EXPECT_THROW(failed.get(), std::out_of_range);
  ASSERT_TRUE(failed.error().has_value());
  EXPECT_EQ(failed.error()->rank(), last_owner());
  EXPECT_EQ(failed.error()->type_name(), "std::out_of_range");
  EXPECT_EQ(failed.error()->closure(), "app::Counter::at");
  EXPECT_NE(failed.error()->describe().find("app::Counter::at"), std::string::npos);
  EXPECT_EQ(counter.invoke(&Counter::at, 1).get(), 2);  // the object is still fine
}

TEST(Proxy, ConstructorExceptionsAreRethrownByMakeProxy) {
  EXPECT_THROW(parc::make_proxy<Counter>(rt(), last_owner(), std::string("bad"), -1),
               std::invalid_argument);
  EXPECT_THROW(parc::make_proxy<Counter>(rt(), 0, std::string("bad"), -1), std::invalid_argument);
}

TEST(Proxy, MisuseIsAUsageError) {
  const int owners = rt().proxies().owners();
  EXPECT_THROW(parc::make_proxy<Counter>(rt(), owners, 1), parc::UsageError);
  EXPECT_THROW(parc::make_proxy<Counter>(rt(), -1, 1), parc::UsageError);
  try {
    parc::make_proxy<app::NotAProxyType>(rt(), 0);
    ADD_FAILURE() << "an undeclared type was built";
  } catch (const parc::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("PARC_PROXY_TYPE(app::NotAProxyType"), std::string::npos)
        << e.what();
  }
  auto counter = parc::make_proxy<Counter>(rt(), last_owner(), 1);
  try {
    counter.invoke(&Counter::unregistered);
    ADD_FAILURE() << "an unregistered method was called";
  } catch (const parc::UsageError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("app::Counter"), std::string::npos) << what;
    EXPECT_NE(what.find("PARC_PROXY_TYPE"), std::string::npos) << what;
  }
  Proxy<Counter> empty;
  EXPECT_FALSE(empty);
  EXPECT_THROW(empty.invoke(&Counter::total), parc::UsageError);
}

TEST(Proxy, ResolveCopiesTheObject) {
  for (int owner : {0, last_owner()}) {
    auto tally = parc::make_proxy<app::Tally>(rt(), owner, app::Tally{"bins", {0, 0, 0}});
    tally.invoke(&app::Tally::bump, 1).get();
    tally.invoke(&app::Tally::bump, 1).get();
    const app::Tally copy = tally.resolve();
    EXPECT_EQ(copy.name, "bins");
    EXPECT_EQ(copy.bins, (std::vector<int>{0, 2, 0}));
  }
}

TEST(Proxy, DroppedProxiesReleaseTheirObjects) {
  const int owner = last_owner();
  const auto before = rt().proxies().live_objects(owner);
  {
    std::vector<Proxy<Counter>> counters;
    for (int i = 0; i < 200; ++i) counters.push_back(parc::make_proxy<Counter>(rt(), owner, i));
    const auto copies = counters;  // copies are references too
    EXPECT_EQ(rt().proxies().live_objects(owner), before + 200);
    std::vector<Proxy<Counter>> some(counters.begin(), counters.begin() + 20);
    parc::TaskFarm farm(rt());
    const auto back = farm.map(echo, some);  // out as task arguments, back as results
    ASSERT_EQ(back.size(), 20u);
    EXPECT_TRUE(back[3] == counters[3]);
    counters.clear();
    EXPECT_EQ(rt().proxies().live_objects(owner), before + 200);  // `copies` hold them
  }
  EXPECT_EQ(rt().proxies().live_objects(owner), before);
}

TEST(Proxy, TasksReturnProxiesToObjectsTheyBuilt) {
  parc::TaskFarm farm(rt());
  auto counter = farm.submit(counter_here, 41).get();
  ASSERT_TRUE(counter.valid());
  EXPECT_GE(counter.owner(), 1);  // the worker that ran the task (serially, simulated)
  EXPECT_FALSE(counter.is_local());
  EXPECT_EQ(counter.invoke(&Counter::add, 1).get(), 42);
  const int owner = counter.owner();
  const auto with = rt().proxies().live_objects(owner);
  counter.reset();
  EXPECT_EQ(rt().proxies().live_objects(owner), with - 1);
}

TEST(Proxy, ObjectsHoldProxiesToOtherObjects) {
  const int counter_owner = rt().proxies().owners() > 2 ? 1 : 0;
  const int ledger_owner = last_owner();
  const auto before =
      rt().proxies().live_objects(counter_owner) +
      (counter_owner == ledger_owner ? 0 : rt().proxies().live_objects(ledger_owner));
  {
    auto ledger = parc::make_proxy<app::Ledger>(
        rt(), ledger_owner, parc::make_proxy<Counter>(rt(), counter_owner, 100));
    EXPECT_EQ(ledger.invoke(&app::Ledger::deposit, 5).get(), 105);        // owner calls owner
    Proxy<Counter> counter = ledger.invoke(&app::Ledger::counter).get();  // a proxy result
    EXPECT_EQ(counter.owner(), counter_owner);
    EXPECT_EQ(counter.invoke(&Counter::add, 1).get(), 106);
    std::vector<parc::Future<int>> deposits;
    for (int i = 0; i < 5; ++i) deposits.push_back(ledger.invoke(&app::Ledger::deposit, 10));
    parc::wait_all(deposits);
    EXPECT_EQ(counter.invoke(&Counter::total).get(), 156);
    auto other = parc::make_proxy<Counter>(rt(), 0, 7);
    EXPECT_EQ(ledger.invoke(&app::Ledger::total_of, other).get(), 7);
    EXPECT_EQ(ledger.invoke(&app::Ledger::total_of, counter).get(), 156);
  }
  // The counter goes once the ledger's own proxy to it is dropped at the ledger's owner,
  // which happens there only after the ledger's release arrived: live_objects' one flush
  // round may miss that second step, so look until it has come (or 10 s).
  auto live = [&] {
    return rt().proxies().live_objects(counter_owner) +
           (counter_owner == ledger_owner ? 0 : rt().proxies().live_objects(ledger_owner));
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  auto after = live();
  while (after != before && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    after = live();
  }
  EXPECT_EQ(after, before);
}

TEST(Proxy, TheOwnerAnswersWhileBusyInATask) {
  if (rt().serial()) {
    GTEST_SKIP() << "serially, a task runs on the manager's own thread: nobody calls meanwhile";
  }
  const int owner = last_owner();
  auto gate = parc::make_proxy<app::Gate>(rt(), owner);
  parc::FarmOptions options;
  options.ranks = {owner};
  parc::TaskFarm farm(rt(), options);
  auto task = farm.submit(busy_owner, gate);
  // Answered by the owner's progress thread while its main thread runs the task.
  while (!gate.invoke(&app::Gate::started).get()) {
    if (task.ready()) break;  // it failed: get() below says why
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const int opened_at = task.ready() ? -1 : gate.invoke(&app::Gate::open).get();
  const std::vector<int> outcome = task.get();
  EXPECT_EQ(outcome[0], 1) << "the task ended without seeing the gate open";
  EXPECT_GT(opened_at, 0);
  EXPECT_LT(opened_at, outcome[1]) << "the call was answered only after the task ended";
}

}  // namespace
