// parc task-farm micro-benchmarks, one manager and its workers:
//
//   mpiexec.mpich -n 2 farm_bench [round_trips=20000] [map=1000000] [window=64]
//                                 [window_tasks=200000] [trials=5] [parts=rtt,map,window]
//
// Prints one "name value" line per figure:
//   farm_round_trip_us         farm.submit(noop, i).get(), one at a time: median over
//                              trials of a trial's mean round trip, microseconds
//   farm_round_trip_us_min     the best trial's mean
//   farm_round_trip_p50_us     median of all the round trips (robust to a noisy machine)
//   farm_round_trip_p99_us     99th percentile
//   farm_map_tasks_per_s       farm.map(noop, <map> ints), median over trials
//   farm_window_tasks_per_s    submit + get with <window> futures in flight, median
// Each part warms up first (a tenth of its size). Every result is checked; a wrong one
// ends the program with exit code 1.

#include "settings.hpp"

#include <parc/parc.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

int noop(int x) { return x; }
PARC_CLOSURE(noop);

namespace {

using Clock = std::chrono::steady_clock;

struct Settings {
  long round_trips = 20000;
  long map = 1000000;
  long window = 64;
  long window_tasks = 200000;
  long trials = 5;
  std::string parts = "rtt,map,window";
  bool runs(const std::string& part) const {
    return ("," + parts + ",").find("," + part + ",") != std::string::npos;
  }
};

Settings parse(int argc, char** argv) {
  Settings s;
  for_each_setting(argc, argv, [&](const std::string& name, const std::string& text) {
    if (name == "parts") {
      s.parts = text;
      return;
    }
    const long value = std::stol(text);
    if (value < 1) throw std::invalid_argument(name + " must be >= 1");
    if (name == "round_trips")
      s.round_trips = value;
    else if (name == "map")
      s.map = value;
    else if (name == "window")
      s.window = value;
    else if (name == "window_tasks")
      s.window_tasks = value;
    else if (name == "trials")
      s.trials = value;
    else
      throw std::invalid_argument("unknown setting " + name);
  });
  return s;
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "farm_bench: wrong results from %s\n", what);
    std::exit(1);
  }
}

long expected_sum(long count) {
  long expected = 0;
  for (long i = 0; i < count; ++i) expected += i & 0xffff;
  return expected;
}

// `count` synchronous submit().get(), each one's time (µs) appended to `samples`;
// returns the mean, µs. One clock read per round trip, as in raw_pingpong.
double round_trips(parc::TaskFarm& farm, long count, std::vector<double>& samples) {
  long sum = 0;
  const auto start = Clock::now();
  auto last = start;
  for (long i = 0; i < count; ++i) {
    sum += farm.submit(noop, static_cast<int>(i & 0xffff)).get();
    const auto now = Clock::now();
    samples.push_back(std::chrono::duration<double, std::micro>(now - last).count());
    last = now;
  }
  check(sum == expected_sum(count), "submit().get()");
  return std::chrono::duration<double, std::micro>(last - start).count() /
         static_cast<double>(count);
}

// Tasks per second of farm.map over `count` ints.
double map_rate(parc::TaskFarm& farm, long count) {
  std::vector<int> inputs(static_cast<std::size_t>(count));
  std::iota(inputs.begin(), inputs.end(), 0);
  const auto start = Clock::now();
  std::vector<int> outputs = farm.map(noop, inputs);
  const double elapsed = seconds_since(start);
  check(outputs == inputs, "map");
  return static_cast<double>(count) / elapsed;
}

// Tasks per second of submit + get with `window` futures in flight.
double window_rate(parc::TaskFarm& farm, long count, long window) {
  std::deque<parc::Future<int>> in_flight;
  long submitted = 0;
  long sum = 0;
  const auto start = Clock::now();
  while (submitted < count || !in_flight.empty()) {
    while (submitted < count && static_cast<long>(in_flight.size()) < window) {
      in_flight.push_back(farm.submit(noop, static_cast<int>(submitted++ & 0xffff)));
    }
    sum += in_flight.front().get();
    in_flight.pop_front();
  }
  const double elapsed = seconds_since(start);
  check(sum == expected_sum(count), "windowed submit");
  return static_cast<double>(count) / elapsed;
}

}  // namespace

int main(int argc, char** argv) {
  parc::Runtime rt(argc, argv);
  return rt.run([&] {
    const Settings s = parse(argc, argv);
    parc::TaskFarm farm(rt);
    std::printf("farm_workers %d\n", rt.workers());

    if (s.runs("rtt")) {
      std::vector<double> samples;
      samples.reserve(static_cast<std::size_t>(s.round_trips * s.trials));
      round_trips(farm, std::max(1L, s.round_trips / 10), samples);  // warm-up
      samples.clear();
      std::vector<double> means;
      for (long t = 0; t < s.trials; ++t)
        means.push_back(round_trips(farm, s.round_trips, samples));
      std::sort(samples.begin(), samples.end());
      std::printf("farm_round_trip_us %.3f\n", median(means));
      std::printf("farm_round_trip_us_min %.3f\n", *std::min_element(means.begin(), means.end()));
      std::printf("farm_round_trip_p50_us %.3f\n", samples[samples.size() / 2]);
      std::printf("farm_round_trip_p99_us %.3f\n", samples[samples.size() * 99 / 100]);
    }
    if (s.runs("map")) {
      map_rate(farm, std::max(1L, s.map / 10));  // warm-up
      std::vector<double> rates;
      for (long t = 0; t < s.trials; ++t) rates.push_back(map_rate(farm, s.map));
      std::printf("farm_map_tasks %ld\n", s.map);
      std::printf("farm_map_tasks_per_s %.0f\n", median(rates));
    }
    if (s.runs("window")) {
      window_rate(farm, std::max(1L, s.window_tasks / 10), s.window);  // warm-up
      std::vector<double> rates;
      for (long t = 0; t < s.trials; ++t)
        rates.push_back(window_rate(farm, s.window_tasks, s.window));
      std::printf("farm_window %ld\n", s.window);
      std::printf("farm_window_tasks_per_s %.0f\n", median(rates));
    }
    std::fflush(stdout);
    return 0;
  });
}
