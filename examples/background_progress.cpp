// Futures finish while rank 0 does its own work: rank 0's progress engine collects the
// outcomes, gives freed workers the next tasks and runs done-callbacks, with no parc call
// from the main thread in between.
//
//   ./background_progress                      serial (one simulated worker)
//   mpiexec.mpich -n 4 ./background_progress   rank 0 computes too, ranks 1-3 run tasks

#include <parc/parc.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <thread>
#include <vector>

// A slow square: `ms` milliseconds of sleep stand in for real work.
long slow_square(long x, int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return x * x;
}
PARC_CLOSURE(slow_square);

int main(int argc, char** argv) {
  parc::Runtime rt(argc, argv);
  return rt.run([&] {
    parc::TaskFarm farm(rt);
    constexpr long tasks = 40;
    std::atomic<long> sum{0};
    std::atomic<int> done{0};
    std::vector<parc::Future<long>> futures;
    for (long i = 1; i <= tasks; ++i) {
      futures.push_back(farm.submit(slow_square, i, 5));
      // Runs on the thread that drives the scheduler when the task finishes: here the
      // engine's, since the main thread never waits.
      futures.back().add_done_callback([&](parc::Future<long>& f) {
        sum += f.get();
        ++done;
      });
    }
    // Rank 0's own work, with no parc call: at most 10 s of it.
    double own = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (done < tasks && std::chrono::steady_clock::now() < deadline) {
      for (int k = 1; k <= 100'000; ++k) own += std::sqrt(static_cast<double>(k));
    }
    const int finished_alone = done.load();
    farm.shutdown();  // every task has finished: returns at once
    const long expected = tasks * (tasks + 1) * (2 * tasks + 1) / 6;
    std::printf("%d of %ld tasks finished while rank 0 computed (%.3g); sum of squares %ld%s\n",
                finished_alone, tasks, own, sum.load(), sum == expected ? "" : " (WRONG)");
    return finished_alone == tasks && sum == expected ? 0 : 1;
  });
}
