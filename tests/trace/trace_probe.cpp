// A run with known work, for the PARC_TRACE tests (trace_test.cpp): 24 tasks of
// traced_square, 9 of traced_cube, one task with a 256 KiB argument, an SPMD region over
// every worker, a two-stage pipeline of 5 items and 3 proxy calls owned by rank 1.
#include <parc/parc.hpp>

#include <chrono>
#include <cstdio>
#include <numeric>
#include <vector>

namespace probe {

void spin_for(std::chrono::microseconds how_long) {
  const auto until = std::chrono::steady_clock::now() + how_long;
  while (std::chrono::steady_clock::now() < until) {
  }
}

int traced_square(int x) {
  spin_for(std::chrono::microseconds(300));  // long enough to see in a trace
  return x * x;
}
PARC_CLOSURE(traced_square);

int traced_cube(int x) { return x * x * x; }
PARC_CLOSURE(traced_cube);

std::size_t traced_bytes(std::vector<char> data) { return data.size(); }
PARC_CLOSURE(traced_bytes);

long traced_region(parc::SpmdContext& ctx) { return ctx.allreduce(static_cast<long>(ctx.rank())); }
PARC_CLOSURE(traced_region);

std::vector<double> stage_spread(int seed) { return std::vector<double>(4, seed); }
PARC_CLOSURE(stage_spread);

double stage_sum(std::vector<double> values) {
  return std::accumulate(values.begin(), values.end(), 0.0);
}
PARC_CLOSURE(stage_sum);

struct Tally {
  long total = 0;
  long add(long k) { return total += k; }
};

}  // namespace probe

PARC_PROXY_TYPE(probe::Tally, &probe::Tally::add);

int main(int argc, char** argv) {
  parc::Runtime rt(argc, argv);
  return rt.run([&] {
    using namespace probe;
    std::vector<int> inputs(24);
    std::iota(inputs.begin(), inputs.end(), 0);
    parc::TaskFarm farm(rt);
    const auto squares = farm.map(traced_square, inputs);
    const auto cubes = farm.map(traced_cube, std::vector<int>(inputs.begin(), inputs.begin() + 9));
    const auto bytes = farm.submit(traced_bytes, std::vector<char>(256 * 1024, 'x')).get();
    const auto region = parc::Spmd(rt).run(traced_region);
    parc::Pipeline pipe(rt, parc::stage(stage_spread), parc::stage(stage_sum));
    const auto sums = pipe.run(std::vector<int>{1, 2, 3, 4, 5});
    auto tally = parc::make_proxy<Tally>(rt, 1);
    long total = 0;
    for (long k = 1; k <= 3; ++k) total = tally.invoke(&Tally::add, k).get();
    std::printf("probe done: %d %d %zu %zu %g %ld\n", squares.back(), cubes.back(), bytes,
                region.size(), sums.back(), total);
  });
}
