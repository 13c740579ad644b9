// An idle parc job for bench/idle_cpu.sh: rank 0 sleeps inside Runtime::run without
// submitting anything, so the workers sit in their serve loop the whole time.
//
//   mpiexec.mpich -n 2 idle_worker [seconds=6]
//
// Each rank prints "idle_worker_pid <rank> <pid>" at start so that a sampler can find
// the worker's process.

#include <parc/parc.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

int main(int argc, char** argv) {
  parc::Runtime rt(argc, argv);
  const double seconds = argc > 1 ? std::atof(argv[1]) : 6.0;
  std::printf("idle_worker_pid %d %ld\n", rt.rank(), static_cast<long>(getpid()));
  std::fflush(stdout);
  return rt.run([&] {
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    return 0;
  });
}
