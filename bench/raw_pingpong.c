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
#include <string.h>

#include "raw_timing.h"

struct Exchange {
  int rank;
  char* buffer;
  int bytes;
};

static void round_trip(long i, void* context) {
  (void)i;
  const int rank = ((struct Exchange*)context)->rank;
  char* buffer = ((struct Exchange*)context)->buffer;
  const int bytes = ((struct Exchange*)context)->bytes;
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
  const int bytes = (int)argument("raw_pingpong", argc, argv, 1, 64);
  const long iterations = argument("raw_pingpong", argc, argv, 2, 100000);
  const long trials = argument("raw_pingpong", argc, argv, 3, 5);
  const long warmup = argument("raw_pingpong", argc, argv, 4, 10000);
  if (iterations < 1 || trials < 1) {
    if (rank == 0) fprintf(stderr, "raw_pingpong: iterations and trials must be >= 1\n");
    MPI_Finalize();
    return 2;
  }
  char* buffer = calloc((size_t)bytes + 1, 1);
  if (rank == 0) printf("raw_message_bytes %d\n", bytes);
  struct Exchange exchange = {rank, buffer, bytes};
  time_steps("raw_round_trip", rank, iterations, trials, warmup, round_trip, &exchange);
  free(buffer);
  MPI_Finalize();
  return 0;
}
