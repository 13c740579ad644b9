// parc SPMD micro-benchmarks: ctx.allreduce of one double inside a region over every
// worker, timed exactly as raw_allreduce.c times MPI_Allreduce, and the cost of running
// an empty region.
//
//   mpiexec.mpich -n N spmd_bench [iterations=20000] [trials=3] [warmup=2000] [regions=200]
//
// The region has N-1 ranks (rank 0 manages): compare with raw_allreduce at -n N-1.
// Inside one region, after a warm-up, each of `trials` trials (each after a
// ctx.barrier()) times `iterations` ctx.allreduce(value, parc::sum) calls, reading the
// clock once per call on region rank 0, which returns the figures. Prints one
// "name value" line per figure:
//   spmd_allreduce_ranks    ranks in the region
//   spmd_allreduce_us       median over trials of a trial's mean time per call, µs
//   spmd_allreduce_us_min   the best trial's mean
//   spmd_allreduce_p50_us   median of all the calls (robust to a noisy machine)
//   spmd_allreduce_p99_us   99th percentile
//   spmd_region_run_us      Spmd::run of a closure that returns at once: median of
//                           `regions` runs (start, every rank's answer), µs
// Every result is checked; a wrong one ends the program with exit code 1.

#include "settings.hpp"

#include <parc/parc.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Settings {
  long iterations = 20000;
  long trials = 3;
  long warmup = 2000;
  long regions = 200;
};

Settings parse(int argc, char** argv) {
  Settings s;
  for_each_setting(argc, argv, [&](const std::string& name, const std::string& text) {
    const long value = std::stol(text);
    if (value < (name == "warmup" ? 0 : 1)) throw std::invalid_argument(name + " is too small");
    if (name == "iterations")
      s.iterations = value;
    else if (name == "trials")
      s.trials = value;
    else if (name == "warmup")
      s.warmup = value;
    else if (name == "regions")
      s.regions = value;
    else
      throw std::invalid_argument("unknown setting " + name);
  });
  return s;
}

// One allreduce of (rank + i % 8), checked against its known sum (as in raw_allreduce.c).
void allreduce(parc::SpmdContext& ctx, long i) {
  const double value = static_cast<double>(ctx.rank() + i % 8);
  const double sum = ctx.allreduce(value, parc::sum);
  const double n = ctx.size();
  if (sum != n * (n - 1) / 2 + n * static_cast<double>(i % 8)) {
    throw std::logic_error("spmd_bench: wrong allreduce sum " + std::to_string(sum));
  }
}

}  // namespace

// Region rank 0 returns {median trial mean, best trial mean, p50, p99} in µs; the
// others return nothing.
std::vector<double> time_allreduce(parc::SpmdContext& ctx, long iterations, long trials,
                                   long warmup) {
  for (long i = 0; i < warmup; ++i) allreduce(ctx, i);
  std::vector<double> means;
  std::vector<double> samples;
  samples.reserve(static_cast<std::size_t>(iterations * trials));
  for (long t = 0; t < trials; ++t) {
    ctx.barrier();
    const auto start = Clock::now();
    auto last = start;
    for (long i = 0; i < iterations; ++i) {
      allreduce(ctx, i);
      const auto now = Clock::now();
      samples.push_back(std::chrono::duration<double, std::micro>(now - last).count());
      last = now;
    }
    means.push_back(std::chrono::duration<double, std::micro>(last - start).count() /
                    static_cast<double>(iterations));
  }
  if (ctx.rank() != 0) return {};
  std::sort(means.begin(), means.end());
  std::sort(samples.begin(), samples.end());
  return {means[means.size() / 2], means.front(), samples[samples.size() / 2],
          samples[samples.size() * 99 / 100]};
}
PARC_CLOSURE(time_allreduce);

int region_rank(parc::SpmdContext& ctx) { return ctx.rank(); }
PARC_CLOSURE(region_rank);

int main(int argc, char** argv) {
  parc::Runtime rt(argc, argv);
  return rt.run([&] {
    const Settings s = parse(argc, argv);
    parc::Spmd region(rt);
    const auto size = static_cast<int>(region.ranks().size());

    const std::vector<double> figures =
        region.run(time_allreduce, s.iterations, s.trials, s.warmup).front();
    std::printf("spmd_allreduce_ranks %d\n", size);
    std::printf("spmd_allreduce_us %.3f\n", figures[0]);
    std::printf("spmd_allreduce_us_min %.3f\n", figures[1]);
    std::printf("spmd_allreduce_p50_us %.3f\n", figures[2]);
    std::printf("spmd_allreduce_p99_us %.3f\n", figures[3]);

    std::vector<double> runs;
    for (long r = 0; r < s.regions + s.regions / 10; ++r) {  // the first tenth warms up
      const auto start = Clock::now();
      const std::vector<int> ranks = region.run(region_rank);
      const double us = std::chrono::duration<double, std::micro>(Clock::now() - start).count();
      if (static_cast<int>(ranks.size()) != size || ranks.back() != size - 1) {
        std::fprintf(stderr, "spmd_bench: wrong results from an empty region\n");
        return 1;
      }
      if (r >= s.regions / 10) runs.push_back(us);
    }
    std::sort(runs.begin(), runs.end());
    std::printf("spmd_region_run_us %.3f\n", runs[runs.size() / 2]);
    std::fflush(stdout);
    return 0;
  });
}
