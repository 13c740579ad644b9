// Steady-state heat on a square plate: Jacobi sweeps in an SPMD region (the C++ twin of
// examples/python/heat.py).
//
//   ./spmd_heat                      serial: a region of one simulated rank
//   PARC_SERIAL=3 ./spmd_heat        serial: three simulated ranks (threads)
//   mpiexec.mpich -n 4 ./spmd_heat   rank 0 manages, ranks 1-3 form the region
//
// The top edge is held at 100 degrees, the other edges at 0. The rows are split into
// blocks, one per region rank; before each sweep neighbours swap their edge rows with
// ctx.send / ctx.recv, and every `check` sweeps the ranks agree on the largest change
// with ctx.allreduce(change, parc::max), so all stop at the same sweep. Region rank 0
// gathers the blocks. A Jacobi sweep computes each point from the previous field only,
// the same way whatever the split: the result is the same, bit for bit, at any number
// of ranks. The program checks that against a one-block solve and exits 1 otherwise.

#include <parc/parc.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace heat {

constexpr int n = 40;                // interior points per side
constexpr double top = 100.0;        // temperature of the top edge
constexpr double tolerance = 1e-3;   // stop when no point changes by more than this
constexpr int check = 10;            // sweeps between convergence checks
constexpr int max_sweeps = 100'000;  // a bound, should the tolerance be out of reach
constexpr int width = n + 2;         // a row, with the left and right edges

// `rows` rows of `width` values, row-major.
using Field = std::vector<double>;

// The initial plate, edges included: (n + 2) x (n + 2), interior at 0.
Field plate() {
  Field u(static_cast<std::size_t>(width * width), 0.0);
  std::fill(u.begin() + 1, u.begin() + width - 1, top);
  return u;
}

double& at(Field& u, int row, int col) { return u[static_cast<std::size_t>(row * width + col)]; }

// One Jacobi sweep of rows 1..rows-2 of `u` into `next` (rows 0 and rows-1 are read only).
void sweep(const Field& u, Field& next, int rows) {
  for (int i = 1; i < rows - 1; ++i) {
    const double* up = &u[static_cast<std::size_t>((i - 1) * width)];
    const double* mid = up + width;
    const double* down = mid + width;
    double* out = &next[static_cast<std::size_t>(i * width)];
    // Same order of operations as the Python version: ((up + down) + left) + right.
    for (int j = 1; j < width - 1; ++j) out[j] = 0.25 * (up[j] + down[j] + mid[j - 1] + mid[j + 1]);
  }
}

std::vector<double> row(const Field& u, int i) {
  const auto first = u.begin() + i * width;
  return {first, first + width};
}

void set_row(Field& u, int i, const std::vector<double>& values) {
  std::copy(values.begin(), values.end(), u.begin() + i * width);
}

// What region rank 0 returns: the whole plate and the number of sweeps it took.
struct Solution {
  int sweeps = 0;
  Field plate;
  template <class Archive>
  void serialize(Archive& archive) {
    archive(sweeps, plate);
  }
};

// Region rank r owns `count` rows from interior row `first` (1-based, as in plate()),
// plus a ghost row above and below (the plate's edge for the first and last blocks).
Solution solve(parc::SpmdContext& ctx) {
  const int base = n / ctx.size();
  const int extra = n % ctx.size();
  const int first = 1 + ctx.rank() * base + std::min(ctx.rank(), extra);
  const int count = base + (ctx.rank() < extra ? 1 : 0);
  if (count == 0) {
    throw std::invalid_argument("a " + std::to_string(n) + "-row plate cannot be split over " +
                                std::to_string(ctx.size()) + " ranks");
  }
  const int rows = count + 2;
  const Field whole = plate();
  Field u(whole.begin() + (first - 1) * width, whole.begin() + (first + count + 1) * width);
  Field next = u;
  const bool has_above = ctx.rank() > 0;
  const bool has_below = ctx.rank() < ctx.size() - 1;

  int sweeps = 0;
  while (true) {
    for (int k = 0; k < check; ++k) {
      // Halo exchange. Sends are buffered (they return at once), so sending both edge
      // rows before receiving cannot deadlock.
      if (has_above) ctx.send(ctx.rank() - 1, row(u, 1));
      if (has_below) ctx.send(ctx.rank() + 1, row(u, rows - 2));
      if (has_above) set_row(u, 0, ctx.recv<std::vector<double>>(ctx.rank() - 1));
      if (has_below) set_row(u, rows - 1, ctx.recv<std::vector<double>>(ctx.rank() + 1));
      sweep(u, next, rows);
      std::swap(u, next);
    }
    sweeps += check;
    double change = 0.0;  // over the last sweep
    for (std::size_t i = width; i < u.size() - width; ++i) {
      change = std::max(change, std::abs(u[i] - next[i]));
    }
    if (ctx.allreduce(change, parc::max) < tolerance || sweeps >= max_sweeps) break;
  }

  const Field mine(u.begin() + width, u.end() - width);
  std::vector<Field> blocks = ctx.gather(mine, 0);
  if (ctx.rank() != 0) return {};
  Solution solution{sweeps, plate()};
  auto out = solution.plate.begin() + width;
  for (const Field& block : blocks) out = std::copy(block.begin(), block.end(), out);
  return solution;
}

// The same sweeps on the whole plate at once, for the check.
Field solve_in_one_block(int sweeps) {
  Field u = plate();
  Field next = u;
  for (int k = 0; k < sweeps; ++k) {
    sweep(u, next, width);
    std::swap(u, next);
  }
  return u;
}

}  // namespace heat

PARC_CLOSURE(heat::solve);

int main(int argc, char** argv) {
  parc::Runtime rt(argc, argv);
  return rt.run([&] {
    parc::Spmd region(rt);
    std::printf("SPMD region of %zu rank(s)\n", region.ranks().size());
    heat::Solution s = std::move(region.run(heat::solve).front());
    heat::Field& u = s.plate;

    double sum = 0.0;
    double hottest = 0.0;
    bool bounded = true;
    bool mirror = true;
    for (int i = 1; i <= heat::n; ++i) {
      for (int j = 1; j <= heat::n; ++j) {
        const double value = heat::at(u, i, j);
        sum += value;
        hottest = std::max(hottest, value);
        bounded = bounded && value >= 0.0 && value <= heat::top;
        mirror = mirror && std::abs(value - heat::at(u, i, heat::width - 1 - j)) <= 1e-9;
      }
    }
    const int centre = heat::n / 2 + 1;
    std::printf(
        "plate %d x %d, top edge at %g degrees: converged in %d Jacobi sweeps "
        "(largest change < %g)\n",
        heat::n, heat::n, heat::top, s.sweeps, heat::tolerance);
    std::printf("checksum %.6f, centre %.6f, hottest %.6f\n", sum, heat::at(u, centre, centre),
                hottest);
    const bool same = u == heat::solve_in_one_block(s.sweeps);
    std::printf(
        "same field as one block: %s; within the edge temperatures: %s; "
        "left-right symmetric: %s\n",
        same ? "True" : "False", bounded ? "True" : "False", mirror ? "True" : "False");
    return same && bounded && mirror ? 0 : 1;
  });
}
