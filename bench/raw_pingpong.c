/* Raw MPI ping-pong between ranks 0 and 1: the reference round trip for parc's
 * synchronous submit().get().
 *
 *   mpiexec.mpich -n 2 raw_pingpong [bytes=64] [iterations=100000] [trials=5] [warmup=10000]
 *
 * Rank 0 sends `bytes` with MPI_Send and waits in MPI_Recv for the same number of bytes
 * back; rank 1 echoes (blocking calls, as a C MPI programmer would write it). After a
 * warm-up, each of `trials` trials times `iterations` round trips, reading the clock
 * once per round trip. Prints one "name value" line per figure:
 *
 *   raw_round_trip_us      median over trials of a trial's mean round trip, microseconds
 *   raw_round_trip_us_min  the best trial's mean
 *   raw_round_trip_p50_us  median of all the round trips (robust to a noisy machine)
 *   raw_round_trip_p99_us  99th percentile
 *   raw_message_bytes      message size
 *
 * The default size (64 bytes) is that of parc's small frames: a 16-byte header plus a
 * one-task batch of a closure taking an int is ~52 bytes; its result batch ~49. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    fprintf(stderr, "raw_pingpong: argument %d (%s) is not a non-negative integer\n", index,
            argv[index]);
    exit(2);
  }
  return value;
}

static void round_trip(int rank, char* buffer, int bytes) {
  if (rank == 0) {
    MPI_Send(buffer, bytes, MPI_BYTE, 1, 0, MPI_COMM_WORLD);
    MPI_Recv(buffer, bytes, MPI_BYTE, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  } else if (rank == 1) {
    MPI_Recv(buffer, bytes, MPI_BYTE, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    MPI_Send(buffer, bytes, MPI_BYTE, 0, 0, MPI_COMM_WORLD);
  }
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  int size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size < 2) {
    if (rank == 0) fprintf(stderr, "raw_pingpong: needs 2 ranks (mpiexec.mpich -n 2)\n");
    MPI_Finalize();
    return 2;
  }
  const int bytes = (int)argument(argc, argv, 1, 64);
  const long iterations = argument(argc, argv, 2, 100000);
  const long trials = argument(argc, argv, 3, 5);
  const long warmup = argument(argc, argv, 4, 10000);
  if (iterations < 1 || trials < 1) {
    if (rank == 0) fprintf(stderr, "raw_pingpong: iterations and trials must be >= 1\n");
    MPI_Finalize();
    return 2;
  }
  char* buffer = calloc((size_t)bytes + 1, 1);
  double* means = calloc((size_t)trials, sizeof *means);
  double* samples = calloc((size_t)(iterations * trials), sizeof *samples);

  for (long i = 0; i < warmup; ++i) round_trip(rank, buffer, bytes);
  for (long t = 0; t < trials; ++t) {
    MPI_Barrier(MPI_COMM_WORLD);
    double* sample = samples + t * iterations;
    const double start = MPI_Wtime();
    double last = start;
    for (long i = 0; i < iterations; ++i) {
      round_trip(rank, buffer, bytes);
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
    printf("raw_message_bytes %d\n", bytes);
    printf("raw_round_trip_us %.3f\n", means[trials / 2]);
    printf("raw_round_trip_us_min %.3f\n", means[0]);
    printf("raw_round_trip_p50_us %.3f\n", samples[n / 2]);
    printf("raw_round_trip_p99_us %.3f\n", samples[n * 99 / 100]);
    fflush(stdout);
  }
  free(samples);
  free(means);
  free(buffer);
  MPI_Finalize();
  return 0;
}
