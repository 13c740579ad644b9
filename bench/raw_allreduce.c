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
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static int compare_doubles(const void* a, const void* b) {
  const double x = *(const double*)a;
  const double y = *(const double*)b;
  return (x > y) - (x < y);
}

static long argument(int argc, char** argv, int index, long fallback) {
  if (argc <= index) return fallback;
  char* end = NULL;
  const long value = strtol(argv[index], &end, 10);
  if (*end != '\0' || value < 0) {
    fprintf(stderr, "raw_allreduce: argument %d (%s) is not a non-negative integer\n", index,
            argv[index]);
    exit(2);
  }
  return value;
}

/* One allreduce of (rank + i % 8), checked against its known sum. */
static double allreduce(int rank, int size, long i) {
  double value = (double)(rank + i % 8);
  double sum = 0.0;
  MPI_Allreduce(&value, &sum, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  const double expected = (double)size * (double)(size - 1) / 2.0 + (double)(size * (i % 8));
  if (sum != expected) {
    fprintf(stderr, "raw_allreduce: wrong sum %g (expected %g)\n", sum, expected);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  return sum;
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  int size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const long iterations = argument(argc, argv, 1, 20000);
  const long trials = argument(argc, argv, 2, 3);
  const long warmup = argument(argc, argv, 3, 2000);
  if (iterations < 1 || trials < 1) {
    if (rank == 0) fprintf(stderr, "raw_allreduce: iterations and trials must be >= 1\n");
    MPI_Finalize();
    return 2;
  }
  double* means = calloc((size_t)trials, sizeof *means);
  double* samples = calloc((size_t)(iterations * trials), sizeof *samples);

  for (long i = 0; i < warmup; ++i) allreduce(rank, size, i);
  for (long t = 0; t < trials; ++t) {
    MPI_Barrier(MPI_COMM_WORLD);
    double* sample = samples + t * iterations;
    const double start = MPI_Wtime();
    double last = start;
    for (long i = 0; i < iterations; ++i) {
      allreduce(rank, size, i);
      const double now = MPI_Wtime();
      sample[i] = (now - last) * 1e6;
      last = now;
    }
    means[t] = (last - start) / (double)iterations * 1e6;
  }
  if (rank == 0) {
    const size_t n = (size_t)(iterations * trials);
    qsort(means, (size_t)trials, sizeof *means, compare_doubles);
    qsort(samples, n, sizeof *samples, compare_doubles);
    printf("raw_allreduce_ranks %d\n", size);
    printf("raw_allreduce_us %.3f\n", means[trials / 2]);
    printf("raw_allreduce_us_min %.3f\n", means[0]);
    printf("raw_allreduce_p50_us %.3f\n", samples[n / 2]);
    printf("raw_allreduce_p99_us %.3f\n", samples[n * 99 / 100]);
    fflush(stdout);
  }
  free(samples);
  free(means);
  MPI_Finalize();
  return 0;
}
