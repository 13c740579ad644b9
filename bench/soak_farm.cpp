// The C++ soak (the twin of soak.py): tasks through parc::TaskFarm, then proxy calls, the
// RSS of every rank sampled throughout, every outcome checked to arrive exactly once.
//
//   mpiexec.mpich -n 3 soak_farm [tasks=1000000] [proxy_calls=100000] [round=50000]
//                                [interval_ms=250] [max_task_slope=64] [max_call_slope=256]
//                                [min_growth_mib=16] [churn_every=4]
//
// Phase 1: input x (each integer of [0, tasks) once) returns {x, code(x)} or throws
// std::domain_error(to_string(x)); per round, 80% through farm.map over an iota view,
// 15% through farm.submit in windows of 256 collected with parc::as_completed, 5% on a
// collect_all farm: half in a map whose inputs all throw (the ParallelException's
// members are checked), half as futures of which a tenth throw. Phase 2: Counters owned
// by the workers: invoke (one synchronous, 8 futures), a data member read, every
// churn_every-th turn a Counter made, called, passed to a task and dropped plus a map of
// 8 tasks calling the long-lived Counters; at the end each Counter's total, count and xor
// must be what was sent and live_objects back at its start on every rank. A thread on
// rank 0 reads /proc/<pid>/statm of every rank (same host) every interval_ms.
//
// Prints "name value" lines; exits 1 when an outcome was lost, duplicated or wrong, an
// object leaked, or a slope after the warm-up (the first 10%) is over its limit (bytes
// per task or call) while the fitted growth is at least min_growth_mib.

#include "settings.hpp"

#include <parc/parc.hpp>

#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <ranges>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

struct Outcome {
  std::int64_t x = -1;
  std::uint64_t code = 0;
};

std::uint64_t code_of(std::int64_t x) {
  return (static_cast<std::uint64_t>(x) * 0x9E3779B97F4A7C15ULL) & ((1ULL << 48) - 1);
}

Outcome work(std::int64_t x) { return {x, code_of(x)}; }
PARC_CLOSURE(work);

Outcome work_or_fail(std::int64_t x, bool fail) {
  if (fail) throw std::domain_error(std::to_string(x));
  return {x, code_of(x)};
}
PARC_CLOSURE(work_or_fail);

class Counter {
 public:
  std::atomic<long> count{0};
  long add(long k) {
    std::lock_guard lock(mutex_);
    total_ += k;
    xor_ ^= k;
    ++count;
    return k;
  }
  std::array<long, 3> state() const {
    std::lock_guard lock(mutex_);
    return {total_, count.load(), xor_};
  }

 private:
  mutable std::mutex mutex_;
  long total_ = 0;
  long xor_ = 0;
};
PARC_PROXY_TYPE(Counter, &Counter::add, &Counter::state, &Counter::count);

struct Probe {
  long pid = static_cast<long>(getpid());
};
PARC_PROXY_TYPE(Probe, &Probe::pid);

long bump(parc::Proxy<Counter> counter, long k) { return counter.invoke(&Counter::add, k).get(); }
PARC_CLOSURE(bump);

namespace {

using Clock = std::chrono::steady_clock;
constexpr double kMiB = 1024.0 * 1024.0;

struct Settings {
  long tasks = 1000000, proxy_calls = 100000, round = 50000, interval_ms = 250, churn_every = 4;
  double max_task_slope = 64, max_call_slope = 256, min_growth_mib = 16;
};

Settings parse(int argc, char** argv) {
  Settings s;
  for_each_setting(argc, argv, [&](const std::string& name, const std::string& text) {
    const double value = std::stod(text);
    if (name == "tasks")
      s.tasks = static_cast<long>(value);
    else if (name == "proxy_calls")
      s.proxy_calls = static_cast<long>(value);
    else if (name == "round")
      s.round = static_cast<long>(value);
    else if (name == "churn_every")
      s.churn_every = static_cast<long>(value);
    else if (name == "interval_ms")
      s.interval_ms = static_cast<long>(value);
    else if (name == "max_task_slope")
      s.max_task_slope = value;
    else if (name == "max_call_slope")
      s.max_call_slope = value;
    else if (name == "min_growth_mib")
      s.min_growth_mib = value;
    else
      throw std::invalid_argument("unknown setting " + name);
  });
  if (s.tasks < 1 || s.proxy_calls < 1 || s.round < 100)
    throw std::invalid_argument("sizes too small");
  return s;
}

long rss_of(long pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/statm");
  long size = 0, resident = -1;
  if (!(in >> size >> resident)) return -1;
  return resident * sysconf(_SC_PAGESIZE);
}

std::atomic<int> g_phase{0};  // 1 tasks, 2 proxies
std::atomic<long> g_done{0};

struct Sample {
  int phase;
  long done;
  std::vector<long> rss;
};

class Sampler {
 public:
  Sampler(std::vector<long> pids, long interval_ms)
      : pids_(std::move(pids)), interval_(interval_ms) {
    samples_.reserve(100000);
    thread_ = std::thread([this] {
      while (!stop_.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(interval_));
        sample();
      }
    });
  }
  void sample() {
    Sample s{g_phase.load(), g_done.load(), {}};
    for (long pid : pids_) s.rss.push_back(rss_of(pid));
    std::lock_guard lock(mutex_);
    if (samples_.size() < samples_.capacity()) samples_.push_back(std::move(s));
  }
  std::vector<Sample> finish() {
    stop_ = true;
    thread_.join();
    sample();
    return samples_;
  }

 private:
  std::vector<long> pids_;
  long interval_;
  std::vector<Sample> samples_;
  std::mutex mutex_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Which inputs' outcomes arrived, how often, and whether each was the right one.
struct Ledger {
  explicit Ledger(long n)
      : seen(static_cast<std::size_t>(n), 0) {}  // zero-filled: pages touched now
  std::vector<std::uint8_t> seen;
  long count = 0, errors = 0, duplicates = 0, wrong = 0;
  long long sum = 0;
  long xr = 0;
  void outcome(std::int64_t x, std::uint64_t code, bool error, bool planned_error) {
    if (x < 0 || x >= static_cast<std::int64_t>(seen.size())) {
      ++wrong;
      return;
    }
    if (code != code_of(x) || error != planned_error) ++wrong;
    auto& s = seen[static_cast<std::size_t>(x)];
    if (s) ++duplicates;
    if (s < 255) ++s;
    ++count;
    sum += x;
    xr ^= x;
    errors += error;
    ++g_done;
  }
};

// The round's split: [begin, a) map, [a, b) submit, [b, c) collect_all map (all fail),
// [c, end) collect_all futures (x % 10 == 3 fail).
struct Round {
  long begin, a, b, c, end;
};
Round split(long begin, long end) {
  const long size = end - begin;
  const long a = begin + size * 80 / 100, b = begin + size * 95 / 100;
  return {begin, a, b, b + (end - b) / 2, end};
}

bool phase_tasks(parc::Runtime& rt, const Settings& s, long& planned_errors, Ledger& ledger) {
  parc::TaskFarm farm(rt);
  parc::TaskFarm all(rt, parc::Policy::collect_all);
  planned_errors = 0;
  for (long begin = 0; begin < s.tasks; begin += s.round) {
    const Round r = split(begin, std::min(s.tasks, begin + s.round));
    for (const Outcome& o :
         farm.map(work, std::views::iota(std::int64_t{r.begin}, std::int64_t{r.a})))
      ledger.outcome(o.x, o.code, false, false);
    for (long w = r.a; w < r.b; w += 256) {
      std::vector<parc::Future<Outcome>> futures;
      for (long x = w; x < std::min(r.b, w + 256); ++x)
        futures.push_back(farm.submit(work, std::int64_t{x}));
      for (auto& f : parc::as_completed(futures)) {
        const Outcome o = f.get();
        ledger.outcome(o.x, o.code, false, false);
      }
    }
    std::vector<std::tuple<std::int64_t, bool>> failing;
    for (long x = r.b; x < r.c; ++x) failing.emplace_back(x, true);
    planned_errors += r.c - r.b;
    if (!failing.empty()) {
      try {
        all.map(work_or_fail, failing);
        ++ledger.wrong;  // every one of them throws
      } catch (const parc::ParallelException& group) {
        for (const auto& e : group.errors()) {
          const std::int64_t x = std::stoll(e.message());
          ledger.outcome(x, code_of(x), true, true);
        }
      }
    }
    std::vector<parc::Future<Outcome>> futures;
    for (long x = r.c; x < r.end; ++x) {
      const bool fail = x % 10 == 3;
      planned_errors += fail;
      futures.push_back(all.submit(work_or_fail, std::int64_t{x}, fail));
    }
    for (auto& f : parc::as_completed(futures)) {
      try {
        const Outcome o = f.get();
        ledger.outcome(o.x, o.code, false, o.x % 10 == 3);
      } catch (const std::domain_error& e) {
        const std::int64_t x = std::stoll(e.what());
        ledger.outcome(x, code_of(x), true, x % 10 == 3);
      }
    }
  }
  const long n = s.tasks;
  long expected_xor = 0;
  switch ((n - 1) % 4) {
    case 0:
      expected_xor = n - 1;
      break;
    case 1:
      expected_xor = 1;
      break;
    case 2:
      expected_xor = n;
      break;
    default:
      expected_xor = 0;
  }
  long missing = 0, twice = 0;
  for (auto v : ledger.seen) {
    missing += v == 0;
    twice += v > 1;
  }
  std::printf(
      "soak_tasks_outcomes %ld\nsoak_tasks_errors %ld\nsoak_tasks_missing %ld\n"
      "soak_tasks_duplicated %ld\nsoak_tasks_wrong %ld\n",
      ledger.count, ledger.errors, missing, ledger.duplicates, ledger.wrong);
  return missing == 0 && twice == 0 && ledger.duplicates == 0 && ledger.wrong == 0 &&
         ledger.count == n && ledger.sum == static_cast<long long>(n) * (n - 1) / 2 &&
         ledger.xr == expected_xor && ledger.errors == planned_errors;
}

bool phase_proxies(parc::Runtime& rt, const Settings& s, long& calls) {
  bool ok = true;
  auto fail = [&](const std::string& what) {
    if (ok) std::fprintf(stderr, "soak_farm: %s\n", what.c_str());
    ok = false;
  };
  std::vector<long> baseline;
  for (int r = 0; r < rt.size(); ++r)
    baseline.push_back(static_cast<long>(rt.proxies().live_objects(r)));
  const int owners = rt.workers();
  std::vector<parc::Proxy<Counter>> counters;
  std::vector<std::array<long, 3>> sent(static_cast<std::size_t>(owners), {0, 0, 0});
  for (int r = 1; r <= owners; ++r) counters.push_back(parc::make_proxy<Counter>(rt, r));
  long key = 1;
  auto count = [&](long k) {
    calls += k;
    g_done = calls;
  };
  auto note = [&](std::size_t i, long k) {
    sent[i][0] += k;
    sent[i][1] += 1;
    sent[i][2] ^= k;
  };
  count(owners);
  {
    parc::TaskFarm farm(rt);
    for (long turn = 0; calls < s.proxy_calls; ++turn) {
      const std::size_t i = static_cast<std::size_t>(turn % owners);
      auto& counter = counters[i];
      long k = key++;
      if (counter.invoke(&Counter::add, k).get() != k) fail("sync add answered wrong");
      note(i, k);
      std::vector<parc::Future<long>> futures;
      std::vector<long> ks;
      for (int j = 0; j < 8; ++j) {
        ks.push_back(key++);
        futures.push_back(counter.invoke(&Counter::add, ks.back()));
      }
      for (int j = 0; j < 8; ++j) {
        if (futures[static_cast<std::size_t>(j)].get() != ks[static_cast<std::size_t>(j)])
          fail("async add answered wrong");
        note(i, ks[static_cast<std::size_t>(j)]);
      }
      if (counter.read(&Counter::count).get() != sent[i][1])
        fail("count read differs from the adds sent");
      count(10);
      if (s.churn_every > 0 && turn % s.churn_every == 0) {
        const int owner = 1 + static_cast<int>((turn / s.churn_every) % owners);
        auto temp = parc::make_proxy<Counter>(rt, owner);
        const long k1 = key++, k2 = key++;
        if (temp.invoke(&Counter::add, k1).get() != k1) fail("temporary add answered wrong");
        if (farm.submit(bump, temp, k2).get() != k2)
          fail("temporary add from a task answered wrong");
        if (temp.invoke(&Counter::state).get() != std::array<long, 3>{k1 + k2, 2, k1 ^ k2})
          fail("temporary Counter's state wrong");
        temp.reset();
        std::vector<std::tuple<parc::Proxy<Counter>, long>> args;
        std::vector<std::size_t> targets;
        for (int j = 0; j < 8; ++j) {
          targets.push_back(static_cast<std::size_t>((turn + j) % owners));
          args.emplace_back(counters[targets.back()], key++);
        }
        const std::vector<long> replies = farm.map(bump, args);
        for (std::size_t j = 0; j < args.size(); ++j) {
          if (replies[j] != std::get<1>(args[j])) fail("add from a task answered wrong");
          note(targets[j], std::get<1>(args[j]));
        }
        count(4 + 8);
      }
    }
  }
  for (std::size_t i = 0; i < counters.size(); ++i) {
    if (counters[i].invoke(&Counter::state).get() != sent[i])
      fail("a Counter's total, count or xor differs from what was sent");
  }
  counters.clear();
  for (int r = 0; r < rt.size(); ++r) {
    const long live = static_cast<long>(rt.proxies().live_objects(r));
    std::printf("soak_live_objects_rank%d %ld (baseline %ld)\n", r, live,
                baseline[static_cast<std::size_t>(r)]);
    if (live != baseline[static_cast<std::size_t>(r)])
      fail("live_objects not back to its baseline");
  }
  return ok;
}

// Least-squares slope of RSS against work done after the warm-up, per rank; false when
// one is over `limit` bytes per unit with a fitted growth of at least min_growth_mib.
bool report_rss(const std::vector<Sample>& samples, int phase, const char* name, long total,
                double limit, double min_growth_mib, int ranks) {
  bool ok = true;
  for (int r = 0; r < ranks; ++r) {
    double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0, first = -1, warm = -1, end = -1, max = 0;
    long warm_at = -1, end_at = 0;
    for (const auto& smp : samples) {
      const double v = static_cast<double>(smp.rss[static_cast<std::size_t>(r)]);
      if (smp.phase != phase || v < 0) continue;
      if (first < 0) first = v;
      max = std::max(max, v);
      end = v;
      end_at = smp.done;
      if (smp.done < total / 10) continue;
      if (warm < 0) warm = v, warm_at = smp.done;
      const double x = static_cast<double>(smp.done);
      n += 1, sx += x, sy += v, sxx += x * x, sxy += x * v;
    }
    const double denom = n * sxx - sx * sx;
    const double slope = n >= 3 && denom > 0 ? (n * sxy - sx * sy) / denom : 0;
    const double growth = slope * static_cast<double>(end_at - warm_at) / kMiB;
    std::printf(
        "soak_%s_rank%d_rss_mib start %.1f warmup_end %.1f end %.1f max %.1f "
        "slope_bytes_per_1000 %.0f slope_mib_per_million %.2f\n",
        name, r, first / kMiB, warm / kMiB, end / kMiB, max / kMiB, slope * 1000,
        slope * 1e6 / kMiB);
    if (slope > limit && growth >= min_growth_mib) {
      std::fprintf(stderr, "soak_farm: %s: rank %d RSS grows %.0f bytes per unit, over %g\n", name,
                   r, slope, limit);
      ok = false;
    }
  }
  return ok;
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  parc::Runtime rt(argc, argv);
  return rt.run([&] {
    const Settings s = parse(argc, argv);
    if (rt.workers() < 1 || rt.size() < 2) {
      std::fprintf(stderr, "soak_farm: run it with mpiexec.mpich -n 3 (at least 2 ranks)\n");
      return 2;
    }
    std::vector<long> pids{static_cast<long>(getpid())};
    for (int r = 1; r < rt.size(); ++r)
      pids.push_back(parc::make_proxy<Probe>(rt, r).read(&Probe::pid).get());
    Sampler sampler(pids, s.interval_ms);
    bool ok = true;

    g_phase = 1;
    sampler.sample();
    auto start = Clock::now();
    long planned_errors = 0;
    Ledger ledger(s.tasks);
    const bool tasks_ok = phase_tasks(rt, s, planned_errors, ledger);
    const double task_seconds = seconds_since(start);
    sampler.sample();
    std::printf(
        "soak_tasks %ld\nsoak_tasks_seconds %.2f\nsoak_tasks_per_s %.0f\nsoak_tasks_exactly_once "
        "%d\n",
        s.tasks, task_seconds, static_cast<double>(s.tasks) / task_seconds, tasks_ok ? 1 : 0);
    std::fflush(stdout);
    ok = ok && tasks_ok;

    g_phase = 2;
    g_done = 0;
    sampler.sample();
    start = Clock::now();
    long calls = 0;
    const bool proxies_ok = phase_proxies(rt, s, calls);
    const double proxy_seconds = seconds_since(start);
    g_phase = 3;
    const std::vector<Sample> samples = sampler.finish();
    std::printf(
        "soak_proxy_calls %ld\nsoak_proxy_seconds %.2f\nsoak_proxy_calls_per_s %.0f\n"
        "soak_proxies_exactly_once_no_leak %d\n",
        calls, proxy_seconds, static_cast<double>(calls) / proxy_seconds, proxies_ok ? 1 : 0);
    ok = ok && proxies_ok;
    ok = report_rss(samples, 1, "tasks", s.tasks, s.max_task_slope, s.min_growth_mib, rt.size()) &&
         ok;
    ok = report_rss(samples, 2, "proxies", calls, s.max_call_slope, s.min_growth_mib, rt.size()) &&
         ok;
    std::printf("soak_samples %zu\nsoak_ok %d\n", samples.size(), ok ? 1 : 0);
    return ok ? 0 : 1;
  });
}
