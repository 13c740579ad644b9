// Monte Carlo estimate of pi on a task farm: each task throws darts with its own seed.
//
//   ./pi_farm                      serial (one process, one simulated worker)
//   PARC_SERIAL=4 ./pi_farm        serial, four simulated workers
//   mpiexec.mpich -n 4 ./pi_farm   rank 0 manages, ranks 1-3 throw darts

#include <parc/parc.hpp>

#include <cstdint>
#include <cstdio>
#include <numeric>
#include <random>
#include <ranges>

// Darts that land inside the unit quarter circle, out of `darts` thrown.
std::uint64_t count_hits(std::uint64_t seed, std::uint64_t darts) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> coordinate(0.0, 1.0);
  std::uint64_t hits = 0;
  for (std::uint64_t i = 0; i < darts; ++i) {
    const double x = coordinate(rng);
    const double y = coordinate(rng);
    hits += x * x + y * y <= 1.0 ? 1 : 0;
  }
  return hits;
}
PARC_CLOSURE(count_hits);

int main(int argc, char** argv) {
  parc::Runtime rt(argc, argv);
  return rt.run([&] {
    constexpr std::uint64_t tasks = 200;
    const std::uint64_t darts_per_task = 200'000;
    parc::TaskFarm farm(rt);
    auto calls =
        std::views::iota(std::uint64_t{0}, tasks) | std::views::transform([=](std::uint64_t seed) {
          return std::tuple{seed, darts_per_task};
        });
    std::vector<std::uint64_t> hits = farm.map(count_hits, calls);
    const std::uint64_t total = std::accumulate(hits.begin(), hits.end(), std::uint64_t{0});
    const double pi =
        4.0 * static_cast<double>(total) / static_cast<double>(tasks * darts_per_task);
    std::printf("pi ~= %.6f from %llu darts on %d worker%s%s\n", pi,
                static_cast<unsigned long long>(tasks * darts_per_task), rt.workers(),
                rt.workers() == 1 ? "" : "s", rt.serial() ? " (serial)" : "");
    return std::abs(pi - 3.14159265) < 0.01 ? 0 : 1;
  });
}
