/* Raw MPI remote read between ranks 0 and 1: the reference for parc's proxy read
 * (python/bench_bandwidth.py), as in PyGAS's Figure 1.
 *
 *   mpiexec.mpich -n 2 raw_bandwidth [max_bytes=67108864] [ms_per_size=200]
 *                                    [round_trips=100000] [trials=3]
 *
 * A read of N bytes: rank 0 MPI_Sends a one-int request (N), rank 1 answers with an
 * MPI_Send of N bytes from a preallocated buffer, and rank 0 MPI_Recvs them into a
 * preallocated buffer. For N = 1, 4, 16, ... (powers of 4) up to max_bytes, after one
 * warm-up read, reads are timed one by one (a clock read each) for at least ms_per_size
 * and at least 3 reads. Then the round trip of an 8-byte request and 8-byte reply
 * (the reference for a proxy method call), timed by raw_timing.h. Prints:
 *
 *   raw_read_<N>_us          median time of one read of N bytes, microseconds
 *   raw_read_<N>_reads       number of timed reads
 *   raw_round_trip_us ...    8-byte round trip, as raw_pingpong prints it (raw_timing.h)
 */
#include <string.h>

#include "raw_timing.h"

struct Exchange {
  int rank;
  char* buffer;
};

/* The 8-byte request/reply, as raw_pingpong does it. */
static void round_trip(long i, void* context) {
  (void)i;
  const int rank = ((struct Exchange*)context)->rank;
  char* buffer = ((struct Exchange*)context)->buffer;
  if (rank == 0) {
    MPI_Send(buffer, 8, MPI_BYTE, 1, 0, MPI_COMM_WORLD);
    MPI_Recv(buffer, 8, MPI_BYTE, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  } else if (rank == 1) {
    MPI_Recv(buffer, 8, MPI_BYTE, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    MPI_Send(buffer, 8, MPI_BYTE, 0, 0, MPI_COMM_WORLD);
  }
}

static void read_remote(int bytes, char* into) {
  MPI_Send(&bytes, 1, MPI_INT, 1, 0, MPI_COMM_WORLD);
  MPI_Recv(into, bytes, MPI_BYTE, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
}

/* Rank 1 answers requests until a negative one: only rank 0 decides how many reads a
 * size gets (by time), so the owner cannot know the count in advance. */
static void serve_reads(const char* data) {
  for (;;) {
    int bytes = 0;
    MPI_Recv(&bytes, 1, MPI_INT, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    if (bytes < 0) return;
    MPI_Send(data, bytes, MPI_BYTE, 0, 0, MPI_COMM_WORLD);
  }
}

static void time_reads(long max_bytes, long ms_per_size, char* into) {
  size_t capacity = 1024;
  double* samples = malloc(capacity * sizeof *samples);
  for (long bytes = 1; bytes <= max_bytes; bytes *= 4) {
    memset(into, 0, (size_t)bytes);
    read_remote((int)bytes, into); /* warm-up: connection, page faults */
    if (into[bytes - 1] != 1) {
      fprintf(stderr, "raw_bandwidth: wrong data in a read of %ld bytes\n", bytes);
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    size_t n = 0;
    const double begin = MPI_Wtime();
    double last = begin;
    while (n < 3 || last - begin < (double)ms_per_size / 1e3) {
      if (n == capacity) samples = realloc(samples, (capacity *= 2) * sizeof *samples);
      read_remote((int)bytes, into);
      const double now = MPI_Wtime();
      samples[n++] = now - last;
      last = now;
    }
    qsort(samples, n, sizeof *samples, compare_doubles);
    printf("raw_read_%ld_us %.3f\nraw_read_%ld_reads %zu\n", bytes, samples[n / 2] * 1e6, bytes, n);
    fflush(stdout);
  }
  const int stop = -1;
  MPI_Send(&stop, 1, MPI_INT, 1, 0, MPI_COMM_WORLD);
  free(samples);
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  int size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const long max_bytes = argument("raw_bandwidth", argc, argv, 1, 64L << 20);
  const long ms_per_size = argument("raw_bandwidth", argc, argv, 2, 200);
  const long round_trips = argument("raw_bandwidth", argc, argv, 3, 100000);
  const long trials = argument("raw_bandwidth", argc, argv, 4, 3);
  if (size != 2 || max_bytes < 1 || max_bytes > (1L << 30) || round_trips < 1 || trials < 1) {
    if (rank == 0)
      fprintf(stderr,
              "raw_bandwidth: needs 2 ranks (mpiexec.mpich -n 2), 1 <= max_bytes <= 2^30,"
              " round_trips and trials >= 1\n");
    MPI_Finalize();
    return 2;
  }
  const size_t length = max_bytes < 8 ? 8 : (size_t)max_bytes; /* round trips move 8 */
  char* buffer = malloc(length);
  memset(buffer, 1, length); /* touched up front, like the owner's array */
  if (rank == 0)
    time_reads(max_bytes, ms_per_size, buffer);
  else
    serve_reads(buffer);
  struct Exchange exchange = {rank, buffer};
  time_steps("raw_round_trip", rank, round_trips, trials, round_trips / 10, round_trip, &exchange);
  free(buffer);
  MPI_Finalize();
  return 0;
}
