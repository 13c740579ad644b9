/* Raw MPI_Allreduce of one double over MPI_COMM_WORLD: the reference for parc's SPMD
 * ctx.allreduce (spmd_bench.cpp, python/bench_spmd.py).
 *
 *   mpiexec.mpich -n N raw_allreduce [iterations=20000] [trials=3] [warmup=2000]
 *
 * Every rank takes part in the reduction (parc's region has one rank fewer than its
 * job: rank 0 manages), so compare raw at -n N with parc at -n N+1. After a warm-up,
 * each of `trials` trials (each after an MPI_Barrier) times `iterations` blocking
 * MPI_Allreduce(MPI_SUM) calls, reading the clock once per call, on rank 0. Prints one
 * "name value" line per figure:
 *
 *   raw_allreduce_ranks    ranks in the reduction
 *   raw_allreduce_us       median over trials of a trial's mean time per call, µs
 *   raw_allreduce_us_min   the best trial's mean
 *   raw_allreduce_p50_us   median of all the calls (robust to a noisy machine)
 *   raw_allreduce_p99_us   99th percentile
 *
 * Every result is checked; a wrong sum ends the program with exit code 1. */
#include "raw_timing.h"

struct Ranks {
  int rank;
  int size;
};

/* One allreduce of (rank + i % 8), checked against its known sum. */
static void allreduce(long i, void* context) {
  const int rank = ((struct Ranks*)context)->rank;
  const int size = ((struct Ranks*)context)->size;
  double value = (double)(rank + i % 8);
  double sum = 0.0;
  MPI_Allreduce(&value, &sum, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  const double expected = (double)size * (double)(size - 1) / 2.0 + (double)(size * (i % 8));
  if (sum != expected) {
    fprintf(stderr, "raw_allreduce: wrong sum %g (expected %g)\n", sum, expected);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  int size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const long iterations = argument("raw_allreduce", argc, argv, 1, 20000);
  const long trials = argument("raw_allreduce", argc, argv, 2, 3);
  const long warmup = argument("raw_allreduce", argc, argv, 3, 2000);
  if (iterations < 1 || trials < 1) {
    if (rank == 0) fprintf(stderr, "raw_allreduce: iterations and trials must be >= 1\n");
    MPI_Finalize();
    return 2;
  }
  if (rank == 0) printf("raw_allreduce_ranks %d\n", size);
  struct Ranks ranks = {rank, size};
  time_steps("raw_allreduce", rank, iterations, trials, warmup, allreduce, &ranks);
  MPI_Finalize();
  return 0;
}
