// Cannon's matrix multiply, C = A B, in plain C++ with MPI and CBLAS (no parc): the
// reference examples/python/cannon.py (parc proxies and numpy) is measured against.
//
//   mpiexec.mpich -n 4 ./cannon_mpi [n=2048] [repeats=1]
//
// The ranks form a periodic q x q grid, each holding one (n/q) x (n/q) block of A, B
// and C. After the initial skew (block row r of A shifted r blocks left, block column c
// of B c blocks up), each of the q steps adds the product of the local blocks to C,
// then shifts A one block left and B one block up. The inputs are small integers,
// A[i][k] = i + k and B[k][j] = k + 2j, so every partial sum is an integer below 2^53
// and C[i][j] = 2ijn + (i + 2j) n(n-1)/2 + (n-1)n(2n-1)/6 holds exactly in doubles,
// whatever the order of the sums: every entry is checked against it. Rank 0 prints one
// JSON line; the exit status is 1 when an entry is wrong, 2 on bad arguments.

#include <cblas.h>
#include <mpi.h>
#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <new>
#include <string>
#include <utility>
#include <vector>

namespace {

// Memory the kernel may back with 2 MiB pages, as numpy asks for its large arrays: with
// fewer TLB misses dgemm runs about 8% faster, and the comparison must not hinge on that.
template <class T>
struct HugePageAllocator {
  using value_type = T;
  static constexpr std::size_t huge_page = std::size_t{2} << 20;
  HugePageAllocator() = default;
  template <class U>
  HugePageAllocator(const HugePageAllocator<U>&) {}
  T* allocate(std::size_t count) {
    const std::size_t bytes = (count * sizeof(T) + huge_page - 1) / huge_page * huge_page;
    void* memory = std::aligned_alloc(huge_page, bytes);
    if (memory == nullptr) throw std::bad_alloc();
    madvise(memory, bytes, MADV_HUGEPAGE);  // a hint: no huge pages is no error
    return static_cast<T*>(memory);
  }
  void deallocate(T* memory, std::size_t) { std::free(memory); }
  bool operator==(const HugePageAllocator&) const = default;
};

using Block = std::vector<double, HugePageAllocator<double>>;  // bs x bs, row-major

struct Grid {
  MPI_Comm comm;
  int q;         // the grid is q x q
  int row, col;  // this rank's place in it
  int bs;        // block size, n / q
};

// This rank's block of the n x n matrix whose entry (i, j) is f(i, j).
template <class F>
Block block_of(const Grid& grid, F f) {
  Block x(static_cast<std::size_t>(grid.bs) * static_cast<std::size_t>(grid.bs));
  const long first_i = long{grid.row} * grid.bs, first_j = long{grid.col} * grid.bs;
  for (long i = 0; i < grid.bs; ++i)
    for (long j = 0; j < grid.bs; ++j)
      x[static_cast<std::size_t>(i * grid.bs + j)] = f(first_i + i, first_j + j);
  return x;
}

double a_entry(long i, long k) { return static_cast<double>(i + k); }
double b_entry(long k, long j) { return static_cast<double>(k + 2 * j); }
double c_entry(long n, long i, long j) {
  return static_cast<double>(2 * i * j * n + (i + 2 * j) * (n * (n - 1) / 2) +
                             (n - 1) * n * (2 * n - 1) / 6);
}

// Moves every rank's block `by` places towards lower coordinates along `dim` (1: left
// along a row, 0: up a column), wrapping around: the grid is periodic.
void shift(Block& x, const Grid& grid, int dim, int by) {
  if (by % grid.q == 0) return;
  int source = 0, dest = 0;
  MPI_Cart_shift(grid.comm, dim, -by, &source, &dest);
  MPI_Sendrecv_replace(x.data(), static_cast<int>(x.size()), MPI_DOUBLE, dest, 0, source, 0,
                       grid.comm, MPI_STATUS_IGNORE);
}

// Cannon's algorithm on this rank's blocks of A and B (both consumed): its block of C.
Block multiply(Block a, Block b, const Grid& grid) {
  Block c(a.size(), 0.0);
  shift(a, grid, 1, grid.row);  // skew: rank (r, c) now holds A(r, r+c) and B(r+c, c)
  shift(b, grid, 0, grid.col);
  for (int step = 0; step < grid.q; ++step) {
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, grid.bs, grid.bs, grid.bs, 1.0, a.data(),
                grid.bs, b.data(), grid.bs, 1.0, c.data(), grid.bs);
    if (step + 1 < grid.q) {  // the last shifts would only restore the skewed layout
      shift(a, grid, 1, 1);
      shift(b, grid, 0, 1);
    }
  }
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const long n = argc > 1 ? std::atol(argv[1]) : 2048;
  const int repeats = argc > 2 ? std::atoi(argv[2]) : 1;
  const int q = static_cast<int>(std::lround(std::sqrt(size)));

  std::string error;
  if (q * q != size)
    error = "needs a square number of ranks (1, 4, 9, 16, ...) for its q x q grid, got " +
            std::to_string(size);
  else if (n < 1 || n % q != 0)
    error = "n must be a positive multiple of q = " + std::to_string(q) + ", got " +
            (argc > 1 ? std::string(argv[1]) : std::to_string(n));
  else if (n > 65536)  // beyond, C's entries would no longer be exact in doubles
    error = "n must be at most 65536, got " + std::to_string(n);
  else if (repeats < 1)
    error = "repeats must be at least 1";
  if (!error.empty()) {
    if (rank == 0)
      std::fprintf(stderr, "cannon_mpi: %s\nusage: cannon_mpi [n=2048] [repeats=1]\n",
                   error.c_str());
    MPI_Finalize();
    return 2;
  }

  Grid grid{MPI_COMM_NULL, q, 0, 0, static_cast<int>(n / q)};
  const int dims[2] = {q, q}, periods[2] = {1, 1};
  MPI_Cart_create(MPI_COMM_WORLD, 2, dims, periods, 1, &grid.comm);
  int grid_rank = 0, coords[2] = {0, 0};
  MPI_Comm_rank(grid.comm, &grid_rank);
  MPI_Cart_coords(grid.comm, grid_rank, 2, coords);
  grid.row = coords[0];
  grid.col = coords[1];

  double best = std::numeric_limits<double>::infinity();
  Block c;
  for (int repeat = 0; repeat < repeats; ++repeat) {
    Block a = block_of(grid, a_entry), b = block_of(grid, b_entry);
    MPI_Barrier(grid.comm);
    const double start = MPI_Wtime();
    c = multiply(std::move(a), std::move(b), grid);
    double seconds = MPI_Wtime() - start;
    // The multiply takes as long as its slowest rank.
    MPI_Allreduce(MPI_IN_PLACE, &seconds, 1, MPI_DOUBLE, MPI_MAX, grid.comm);
    best = std::min(best, seconds);
  }

  const Block exact = block_of(grid, [n](long i, long j) { return c_entry(n, i, j); });
  double max_error = 0.0;
  for (std::size_t i = 0; i < c.size(); ++i)
    max_error = std::max(max_error, std::abs(c[i] - exact[i]));
  MPI_Allreduce(MPI_IN_PLACE, &max_error, 1, MPI_DOUBLE, MPI_MAX, grid.comm);
  if (rank == 0)
    std::printf(
        "{\"impl\": \"c++/mpi\", \"n\": %ld, \"ranks\": %d, \"seconds\": %.6f, "
        "\"max_error\": %g}\n",
        n, size, best, max_error);
  MPI_Comm_free(&grid.comm);
  MPI_Finalize();
  return max_error == 0.0 ? 0 : 1;
}
