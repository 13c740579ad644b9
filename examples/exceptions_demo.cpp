// Parallel exceptions: what a failure inside a closure looks like on the manager.
//
//   ./exceptions_demo                         serial (one process, one simulated worker)
//   PARC_SERIAL=3 ./exceptions_demo           serial, three simulated workers
//   mpiexec.mpich -n 4 ./exceptions_demo      rank 0 manages, ranks 1-3 run the tasks
//
// The program checks every fact it prints and exits non-zero if one does not hold.

#include <parc/parc.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace demo {

// Registered: rebuilt on the manager as itself. A registered type must be constructible
// from its what() string, because only the type name and what() cross the wire.
class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Registered too: used as the outer exception of a nested chain.
class StepFailed : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Not registered: arrives on the manager as parc::RemoteError, which keeps its type
// name and message.
class SolverDiverged : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace demo

// Every rank registers the same types (namespace scope, like PARC_CLOSURE).
PARC_REGISTER_EXCEPTION(demo::InputError);
PARC_REGISTER_EXCEPTION(demo::StepFailed);

// Succeeds for x % 5 == 0 and fails in a different way for each other remainder.
double simulate(int x) {
  switch (x % 5) {
    case 1:
      throw demo::InputError("input " + std::to_string(x) + ": negative density");
    case 2:
      throw demo::SolverDiverged("input " + std::to_string(x) + ": residual grew to 1e+12");
    case 3:
      try {
        throw std::out_of_range("cell " + std::to_string(10 * x) + " is outside the mesh");
      } catch (...) {
        std::throw_with_nested(demo::StepFailed("input " + std::to_string(x) + ": step 3 failed"));
      }
    case 4:
      throw x;  // not a std::exception: arrives as parc::RemoteError
    default:
      return 0.5 * x;
  }
}
PARC_CLOSURE(simulate);

// Fails at once for x == 0; every other task takes 20 ms.
int slow_step(int x) {
  if (x == 0) throw demo::InputError("input 0 is invalid");
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  return x;
}
PARC_CLOSURE(slow_step);

namespace {

int failures = 0;

void check(bool fact, const std::string& what) {
  if (!fact) {
    ++failures;
    std::fprintf(stderr, "CHECK FAILED: %s\n", what.c_str());
  }
}

// Which worker ranks exist: 1..workers, also in serial mode (simulated workers).
bool is_worker_rank(const parc::Runtime& rt, int rank) { return rank >= 1 && rank <= rt.workers(); }

// 1. collect_all: every task runs, one ParallelException holds every failure.
void collect_all(parc::Runtime& rt) {
  std::printf("== collect_all: map(simulate, 0..9)\n");
  parc::TaskFarm farm(rt, parc::Policy::collect_all);
  std::vector<int> inputs{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  try {
    farm.map(simulate, inputs);
    check(false, "map over failing inputs returned normally");
  } catch (const parc::ParallelException& e) {
    // Inputs 1-4 and 6-9 fail; the errors are ordered by task id, which follows the
    // order of the inputs.
    const std::vector<int> failing{1, 2, 3, 4, 6, 7, 8, 9};
    std::printf("ParallelException: %zu tasks failed\n", e.size());
    check(e.size() == failing.size(), "8 errors, got " + std::to_string(e.size()));
    if (e.size() != failing.size()) return;

    for (std::size_t k = 0; k < e.errors().size(); ++k) {
      const parc::TaskError& err = e.errors()[k];
      const int x = failing[k];
      std::printf("- rank %d (host %s, pid %lld), task %llu, closure %s\n", err.rank(),
                  err.host().c_str(), static_cast<long long>(err.pid()),
                  static_cast<unsigned long long>(err.task_id()), err.closure().c_str());
      std::printf("  type %s: %s\n", err.type_name().c_str(), err.message().c_str());

      check(is_worker_rank(rt, err.rank()), "rank " + std::to_string(err.rank()) + " is a worker");
      check(!err.host().empty(), "the host is known");
      check(rt.serial() ? err.pid() == getpid() : err.pid() != getpid(),
            "the pid is the worker's process");
      check(err.closure() == "simulate", "closure name is simulate");
      check(err.task_id() - e.errors()[0].task_id() == static_cast<std::uint64_t>(x - failing[0]),
            "task ids follow the input order");

      // The exception rebuilt on the manager: registered types come back as themselves.
      try {
        err.rethrow();
      } catch (const demo::InputError& ex) {
        std::printf("  rethrow() -> demo::InputError: %s\n", ex.what());
        check(x % 5 == 1, "demo::InputError comes from an input with x % 5 == 1");
        check(std::string(ex.what()) == "input " + std::to_string(x) + ": negative density",
              "demo::InputError keeps its message");
      } catch (const demo::StepFailed& ex) {
        std::printf("  rethrow() -> demo::StepFailed: %s\n", ex.what());
        check(x % 5 == 3, "demo::StepFailed comes from an input with x % 5 == 3");
        check(err.info().chain.size() == 2, "the chain has two records");
        try {
          std::rethrow_if_nested(ex);
          check(false, "demo::StepFailed carries a nested exception");
        } catch (const std::out_of_range& inner) {
          std::printf("    nested: std::out_of_range: %s\n", inner.what());
          check(std::string(inner.what()) ==
                    "cell " + std::to_string(10 * x) + " is outside the mesh",
                "the nested exception keeps its message");
        }
      } catch (const parc::RemoteError& ex) {
        std::printf("  rethrow() -> parc::RemoteError (type %s, std::exception: %s): %s\n",
                    ex.type_name().c_str(), ex.is_std_exception() ? "yes" : "no", ex.what());
        if (x % 5 == 2) {
          check(ex.type_name() == "demo::SolverDiverged", "unregistered type keeps its name");
          check(ex.is_std_exception(), "demo::SolverDiverged is a std::exception");
          check(ex.message() == "input " + std::to_string(x) + ": residual grew to 1e+12",
                "RemoteError keeps the message");
        } else {
          check(x % 5 == 4, "a non-std throw comes from an input with x % 5 == 4");
          check(ex.type_name() == "int", "the thrown int keeps its type name");
          check(!ex.is_std_exception(), "a thrown int is not a std::exception");
          check(ex.message() == std::to_string(x), "the thrown int's value is the message");
        }
      } catch (...) {
        check(false, "task " + std::to_string(err.task_id()) + " rethrew an unexpected type");
      }
    }
  }

  // Future::get() rethrows the task's exception, with the same rules.
  try {
    farm.submit(simulate, 11).get();
    check(false, "get() of a failing task returned normally");
  } catch (const demo::InputError& ex) {
    std::printf("submit(simulate, 11).get() threw demo::InputError: %s\n", ex.what());
  }
  try {
    farm.submit(simulate, 12).get();
    check(false, "get() of a failing task returned normally");
  } catch (const parc::RemoteError& ex) {
    std::printf("submit(simulate, 12).get() threw parc::RemoteError: %s\n", ex.what());
    check(ex.type_name() == "demo::SolverDiverged",
          "get() rethrows RemoteError for unregistered types");
  }
  check(farm.submit(simulate, 10).get() == 5.0, "get() of a successful task returns its value");
}

// 2. fail_fast (the default): the first failure cancels the tasks that have not started.
void fail_fast(parc::Runtime& rt) {
  std::printf("== fail_fast: submit(slow_step, 0..39), input 0 fails\n");
  parc::TaskFarm farm(rt);  // Policy::fail_fast
  constexpr int tasks = 40;
  std::vector<parc::Future<int>> futures;
  for (int x = 0; x < tasks; ++x) futures.push_back(farm.submit(slow_step, x));
  try {
    parc::wait_all(futures);
    check(false, "wait_all returned normally");
  } catch (const parc::ParallelException& e) {
    // Cancelled tasks are not failures: the exception holds the one task that failed.
    std::printf("wait_all: %s\n", e.what());
    check(e.size() == 1, "fail_fast: one error, got " + std::to_string(e.size()));
  }
  int failed = 0, cancelled = 0, done = 0;
  for (auto& f : futures) {
    if (f.failed()) {
      ++failed;
    } else if (f.cancelled()) {
      ++cancelled;
    } else {
      ++done;
    }
  }
  std::printf("%d failed, %d cancelled before they started, %d ran (%d worker%s)\n", failed,
              cancelled, done, rt.workers(), rt.workers() == 1 ? "" : "s");
  check(failed == 1, "one task failed");
  // Only the tasks already running when the failure arrived (about one per worker) ran.
  check(cancelled >= tasks - 2 * rt.workers(), "the unstarted tasks were cancelled");

  try {
    futures[0].get();
    check(false, "get() of the failed task returned normally");
  } catch (const demo::InputError& ex) {
    std::printf("futures[0].get() threw demo::InputError: %s\n", ex.what());
  }
  try {
    futures[tasks - 1].get();
    check(false, "get() of a cancelled task returned normally");
  } catch (const parc::CancelledError& ex) {
    std::printf("futures[%d].get() threw parc::CancelledError\n", tasks - 1);
  }

  // map raises as soon as the first failure is known; the farm stays usable.
  std::vector<int> inputs(tasks);
  for (int x = 0; x < tasks; ++x) inputs[static_cast<std::size_t>(x)] = x;
  try {
    farm.map(slow_step, inputs);
    check(false, "fail_fast map returned normally");
  } catch (const parc::ParallelException& e) {
    std::printf("map(slow_step, 0..39) raised at the first failure: %s\n", e.what());
    check(e.size() == 1, "fail_fast map: one error");
  }
  check(farm.map(slow_step, std::vector<int>{1, 2, 3}) == std::vector<int>{1, 2, 3},
        "the farm runs new work after a fail_fast failure");
}

}  // namespace

int main(int argc, char** argv) {
  parc::Runtime rt(argc, argv);
  return rt.run([&] {
    std::printf("%d worker%s%s\n", rt.workers(), rt.workers() == 1 ? "" : "s",
                rt.serial() ? " (serial)" : "");
    collect_all(rt);
    fail_fast(rt);
    if (failures != 0) {
      std::printf("exceptions_demo: %d checks FAILED\n", failures);
      return 1;
    }
    std::printf("exceptions_demo: all checks passed\n");
    return 0;
  });
}
