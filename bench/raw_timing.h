/* What the raw C MPI benchmarks share: argument parsing, and timing a step in trials
 * with a clock read per call. */
#ifndef PARC_BENCH_RAW_TIMING_H
#define PARC_BENCH_RAW_TIMING_H

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static int compare_doubles(const void* a, const void* b) {
  const double x = *(const double*)a;
  const double y = *(const double*)b;
  return (x > y) - (x < y);
}

/* argv[index] as a non-negative integer, or `fallback` when absent; exits on bad input. */
static long argument(const char* program, int argc, char** argv, int index, long fallback) {
  if (argc <= index) return fallback;
  char* end = NULL;
  const long value = strtol(argv[index], &end, 10);
  if (*end != '\0' || value < 0) {
    fprintf(stderr, "%s: argument %d (%s) is not a non-negative integer\n", program, index,
            argv[index]);
    exit(2);
  }
  return value;
}

/* After `warmup` calls, times `trials` trials (each after an MPI_Barrier) of `iterations`
 * calls of step(i, context), reading the clock once per call. Rank 0 prints
 *   <name>_us      median over trials of a trial's mean time per call, microseconds
 *   <name>_us_min  the best trial's mean
 *   <name>_p50_us  median of all the calls (robust to a noisy machine)
 *   <name>_p99_us  99th percentile */
static void time_steps(const char* name, int rank, long iterations, long trials, long warmup,
                       void (*step)(long, void*), void* context) {
  double* means = calloc((size_t)trials, sizeof *means);
  double* samples = calloc((size_t)(iterations * trials), sizeof *samples);
  for (long i = 0; i < warmup; ++i) step(i, context);
  for (long t = 0; t < trials; ++t) {
    MPI_Barrier(MPI_COMM_WORLD);
    double* sample = samples + t * iterations;
    const double start = MPI_Wtime();
    double last = start;
    for (long i = 0; i < iterations; ++i) {
      step(i, context);
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
    printf("%s_us %.3f\n", name, means[trials / 2]);
    printf("%s_us_min %.3f\n", name, means[0]);
    printf("%s_p50_us %.3f\n", name, samples[n / 2]);
    printf("%s_p99_us %.3f\n", name, samples[n * 99 / 100]);
    fflush(stdout);
  }
  free(samples);
  free(means);
}

#endif
