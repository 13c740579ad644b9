// A farm of 12 tasks (inputs 0-11; each takes 0.2 s) whose input 5 injects the fault
// named by PARC_FAULT, on whichever rank runs it:
//   kill         the worker SIGKILLs itself
//   _exit        the worker calls std::_Exit(0) (skips finalize)
//   exit         the worker calls std::exit(3) inside the task
//   manager      rank 0 calls std::_Exit(0) while the tasks run
//   proxy_owner  rank 1 owns a proxied object whose method SIGKILLs it during a call
//   hang         the task sleeps for a minute under a farm timeout of 1 s (collect_all)
//   slow         every task sleeps 1 s (a job to interrupt or cancel); rank 0 prints
//                "RUNNING" once the tasks are out
//   linger       after run() returns every rank prints "ENDING rank <r> pid <p>", and
//                rank 0 waits 3 s before finalizing: the others wait in MPI's finalization
// With no fault it prints "probe sum 66". Before a fault, it prints
// "FAULT rank <r> pid <p> at <unix seconds>" so a test can time the detection.
#include <parc/parc.hpp>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace {

std::string fault() {
  const char* value = std::getenv("PARC_FAULT");
  return value != nullptr ? value : "";
}

void announce_fault(int rank) {
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::printf("FAULT rank %d pid %d at %.3f\n", rank, static_cast<int>(getpid()), now);
  std::fflush(stdout);
}

int rank_from_launcher() {
  const char* rank = std::getenv("PMI_RANK");
  return rank != nullptr ? std::atoi(rank) : 0;
}

}  // namespace

int probe_task(int x) {
  if (x == 5) {
    const std::string kind = fault();
    if (kind == "kill" || kind == "_exit" || kind == "exit") announce_fault(rank_from_launcher());
    if (kind == "kill") raise(SIGKILL);
    if (kind == "_exit") std::_Exit(0);
    if (kind == "exit") std::exit(3);
    if (kind == "hang") std::this_thread::sleep_for(std::chrono::minutes(1));
  }
  if (fault() == "slow") std::this_thread::sleep_for(std::chrono::seconds(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  return x;
}
PARC_CLOSURE(probe_task);

struct Doomed {
  int fail() {
    announce_fault(rank_from_launcher());
    raise(SIGKILL);
    return 0;
  }
};
PARC_PROXY_TYPE(Doomed, &Doomed::fail);

int main(int argc, char** argv) {
  parc::Runtime rt(argc, argv);
  const int exit_code = rt.run([&] {
    const std::string kind = fault();
    if (kind == "proxy_owner") {
      auto doomed = parc::make_proxy<Doomed>(rt, rt.size() > 1 ? 1 : 0);
      std::printf("probe proxy %d\n", doomed.invoke(&Doomed::fail).get());
      return 0;
    }
    parc::FarmOptions options;
    if (kind == "hang") {
      options.policy = parc::Policy::collect_all;
      options.timeout = std::chrono::seconds(1);
    }
    parc::TaskFarm farm(rt, options);
    std::vector<int> inputs;
    for (int x = 0; x < 12; ++x) inputs.push_back(x);
    if (kind == "manager") {
      std::vector<parc::Future<int>> futures;
      for (int x : inputs) futures.push_back(farm.submit(probe_task, x));
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      announce_fault(0);
      std::_Exit(0);
    }
    if (kind == "slow") {
      std::vector<parc::Future<int>> futures;
      for (int x : inputs) futures.push_back(farm.submit(probe_task, x));
      std::printf("RUNNING\n");
      std::fflush(stdout);
      int sum = 0;
      for (auto& future : futures) sum += future.get();
      std::printf("probe sum %d\n", sum);
      return 0;
    }
    int sum = 0;
    try {
      for (int value : farm.map(probe_task, inputs)) sum += value;
    } catch (const parc::ParallelException& e) {
      std::printf("probe failed: %s\n", e.what());
      return 1;
    }
    std::printf("probe sum %d\n", sum);
    return 0;
  });
  if (fault() == "linger") {
    std::printf("ENDING rank %d pid %d\n", rt.rank(), static_cast<int>(getpid()));
    std::fflush(stdout);
    if (rt.rank() == 0) std::this_thread::sleep_for(std::chrono::seconds(3));
  }
  return exit_code;
}
