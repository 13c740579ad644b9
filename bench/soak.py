"""A soak of parc's Python API: many tasks through the farm, many proxy calls, the RSS of
every rank sampled throughout, every result checked to arrive exactly once.

    PYTHONPATH=build/python mpiexec.mpich -n 3 /usr/bin/python3 bench/soak.py \
        --tasks 1000000 --proxy-calls 100000 --out bench/results/soak.json

(bench/soak.sh runs it so). Rank 0 manages, the others work and own proxied objects.

Phase 1, tasks: every input is a distinct integer x in [0, tasks) and every task returns
(x, code(x)) or raises ValueError(x, code(x)), so the manager can tell which input each
outcome belongs to. The inputs go, round by round (rounds of `--round` inputs), 80%
through one farm.map over a generator that lasts the whole phase (consumed a slice per
round, so it streams with a bounded window), 15% through farm.submit in windows of 256
futures collected with parc.as_completed, and 5% through a second farm with
policy="collect_all": half in a map whose last tenth raises (the group is caught and
its members checked), half as futures of which a tenth raise (f.exception()). A
bytearray marks each input seen, with a count, a sum and an xor of the inputs.

Phase 2, proxies: Counters (soak_objects.py) and numpy arrays owned by the workers;
synchronous method calls, async_ futures, attribute reads, raw resolve() and row reads of
the arrays, Counters created and dropped continuously and passed as task arguments (so
proxies are pickled, loaded and released on other ranks), Counters created inside tasks
and returned as proxies. Every add(k) carries a k no other add carries and returns it;
each Counter's total, count and xor must equal what was sent to it. At the end, every
proxy is dropped and parc.live_objects(rank) must be back to its value at the start on
every rank.

RSS: a thread on rank 0 reads /proc/<pid>/statm of every rank (the workers' pids come from
Probe objects built on them; same host) every --interval seconds, with the phase and its
progress (tasks or proxy calls done). Per phase and rank the report gives the RSS at the
end of the warm-up (the first --warmup fraction of the phase's work), at the end, the
maximum, and the least-squares slope of RSS against work done after the warm-up.

Exits 1 if any outcome is lost, duplicated or wrong, if live_objects does not return to
its baseline, or if a slope is above its threshold while the fitted growth after the
warm-up is at least --min-growth MiB (short runs are too short to judge a slope); it
prints which. Writes --out (JSON), and the same name with .md (summary) and .png (plot,
when matplotlib is there).
"""

import argparse
import faulthandler
import gc
import itertools
import json
import os
import platform
import socket
import sys
import threading
import time

import numpy as np

import parc
from soak_objects import Counter, Probe

MASK = (1 << 48) - 1
PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1 << 20
SUBMIT_WINDOW = 256


def code(x):
    """What a task's outcome carries besides its input: a hash of it."""
    return (x * 0x9E3779B97F4A7C15) & MASK


@parc.closure
def work(x):
    return (x, code(x))


@parc.closure
def work_or_fail(x, fail):
    if fail:
        raise ValueError(x, code(x))
    return (x, code(x))


@parc.closure
def bump(counter, k):
    """A task that calls a proxy it received as an argument."""
    return counter.add(k)


@parc.closure
def make_counter(start):
    """A task that creates an object on its own rank and returns the proxy."""
    return parc.Proxy.create(Counter, start, owner=parc.rank())


# --- progress, shared with the sampling thread ------------------------------------------

class Progress:
    def __init__(self):
        self.phase = "setup"
        self.done = 0


PROGRESS = Progress()


def rss_of(pid):
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return None


class Sampler(threading.Thread):
    """Samples (seconds, phase, done, [rss of each rank]) every `interval` seconds."""

    def __init__(self, pids, interval):
        super().__init__(name="soak-rss", daemon=True)
        self.pids = pids
        self.interval = interval
        self.samples = []
        self.start_time = time.monotonic()
        self.halt = threading.Event()
        self.lock = threading.Lock()

    def sample(self):
        phase, done = PROGRESS.phase, PROGRESS.done
        rss = [rss_of(pid) for pid in self.pids]
        with self.lock:
            self.samples.append((round(time.monotonic() - self.start_time, 3), phase, done, rss))

    def run(self):
        while not self.halt.wait(self.interval):
            self.sample()

    def stop(self):
        self.halt.set()
        self.join()
        self.sample()


# --- exactly-once bookkeeping ------------------------------------------------------------

class Ledger:
    """Which inputs' outcomes arrived, how often, and whether each was the right one."""

    def __init__(self, n, fails):
        self.n = n
        self.fails = fails  # x -> whether its task raises
        self.seen = bytearray(n)
        for i in range(0, n, 1024):  # touch every page now: no RSS growth while marking
            self.seen[i] = 0
        self.count = self.sum = self.xor = 0
        self.results = self.errors = 0
        self.duplicates = self.wrong = self.out_of_range = 0
        self.anomalies = []  # the first few, described

    def note(self, what):
        if len(self.anomalies) < 20:
            self.anomalies.append(what)

    def outcome(self, x, h, error):
        if not isinstance(x, int) or not 0 <= x < self.n:
            self.out_of_range += 1
            self.note(f"outcome for unknown input {x!r}")
            return
        if h != code(x):
            self.wrong += 1
            self.note(f"input {x}: wrong payload {h!r}")
        if error != self.fails(x):
            self.wrong += 1
            self.note(f"input {x}: {'an error' if error else 'a result'} instead of "
                      f"{'an error' if self.fails(x) else 'a result'}")
        if self.seen[x]:
            self.duplicates += 1
            self.note(f"input {x}: outcome delivered again")
        if self.seen[x] < 255:
            self.seen[x] += 1
        self.count += 1
        self.sum += x
        self.xor ^= x
        if error:
            self.errors += 1
        else:
            self.results += 1
        PROGRESS.done += 1

    def result(self, value):
        try:
            x, h = value
        except (TypeError, ValueError):
            self.out_of_range += 1
            self.note(f"malformed result {value!r}")
            return
        self.outcome(x, h, False)

    def error(self, exc):
        if type(exc) is not ValueError or len(exc.args) != 2:
            self.out_of_range += 1
            self.note(f"unexpected exception {type(exc).__name__}: {exc}")
            return
        self.outcome(exc.args[0], exc.args[1], True)

    def report(self):
        n = self.n
        missing = self.seen.count(0)
        expected_xor = [n - 1, 1, n, 0][(n - 1) % 4] if n else 0  # xor of 0..n-1
        checks = {
            "every input exactly once": missing == 0 and self.duplicates == 0
                                         and self.seen.count(1) == n,
            "count": self.count == n,
            "sum": self.sum == n * (n - 1) // 2,
            "xor": self.xor == expected_xor,
            "payloads and kinds": self.wrong == 0 and self.out_of_range == 0,
        }
        return {
            "inputs": n, "outcomes": self.count, "results": self.results,
            "errors": self.errors,
            "missing": missing, "duplicates": self.duplicates, "wrong": self.wrong,
            "unknown": self.out_of_range, "checks": checks, "ok": all(checks.values()),
            "anomalies": self.anomalies,
        }


# --- phase 1: tasks ------------------------------------------------------------------------

def plan(n, round_size):
    """The inputs of each round, split by path: (map, submit, map that fails at its tail,
    futures of which a tenth fail)."""
    for begin in range(0, n, round_size):
        end = min(n, begin + round_size)
        size = end - begin
        a = begin + size * 80 // 100
        b = begin + size * 95 // 100
        c = b + (end - b) // 2
        yield range(begin, a), range(a, b), range(b, c), range(c, end)


def tail_fails(r):
    """In a collect_all map's inputs r, the last tenth fail (so every earlier result is
    delivered: after the first failure collect_all drops results by design)."""
    return r.start + len(r) * 9 // 10 if len(r) else r.start


def build_fails(n, round_size):
    tails = []
    future_ranges = []
    for _, _, tail_map, futures in plan(n, round_size):
        tails.append((tail_fails(tail_map), tail_map.stop))
        future_ranges.append((futures.start, futures.stop))

    def fails(x):
        r = x // round_size
        lo, hi = tails[r]
        if lo <= x < hi:
            return True
        lo, hi = future_ranges[r]
        return lo <= x < hi and x % 10 == 3
    return fails


def phase_tasks(n, round_size, shared_farm):
    fails = build_fails(n, round_size)
    ledger = Ledger(n, fails)
    rounds = list(plan(n, round_size))
    paths = {"map": 0, "submit": 0, "collect_all_map": 0, "collect_all_futures": 0}
    groups = 0

    def map_inputs():  # a generator: the map reads it as it goes
        for map_part, _, _, _ in rounds:
            yield from map_part

    # The stream has a farm of its own: a map on a farm that also runs other tasks
    # (submit, another map) while it streams hangs once it has refilled its window
    # (--shared-farm shows it; see bench/README.md, "Soak").
    with parc.TaskFarm() as map_farm, parc.TaskFarm() as farm, \
            parc.TaskFarm(policy="collect_all") as all_farm:
        if shared_farm:
            map_farm = farm
        stream = map_farm.map(work, map_inputs(), progress=False)
        for map_part, submit_part, tail_map, futures_part in rounds:
            for value in itertools.islice(stream, len(map_part)):
                ledger.result(value)
            paths["map"] += len(map_part)

            for begin in range(submit_part.start, submit_part.stop, SUBMIT_WINDOW):
                window = [farm.submit(work, x)
                          for x in range(begin, min(begin + SUBMIT_WINDOW, submit_part.stop))]
                for f in parc.as_completed(window):
                    ledger.result(f.result())
                paths["submit"] += len(window)

            if len(tail_map):
                first_fail = tail_fails(tail_map)
                flags = (x >= first_fail for x in tail_map)
                try:
                    for value in all_farm.map(work_or_fail, tail_map, flags, progress=False):
                        ledger.result(value)
                except parc.ParallelException as group:
                    groups += 1
                    for exc in group.exceptions:
                        ledger.error(exc)
                paths["collect_all_map"] += len(tail_map)

            futures = [all_farm.submit(work_or_fail, x, fails(x)) for x in futures_part]
            for f in parc.as_completed(futures):
                exc = f.exception()
                if exc is None:
                    ledger.result(f.result())
                else:
                    ledger.error(exc)
            paths["collect_all_futures"] += len(futures_part)
        leftover = next(stream, None)
        if leftover is not None:
            ledger.note(f"map yielded more than its inputs: {leftover!r}")
            ledger.out_of_range += 1
    report = ledger.report()
    report["expected_errors"] = sum(
        (t.stop - tail_fails(t)) + len(range(f.start + (3 - f.start) % 10, f.stop, 10))
        for _, _, t, f in rounds)
    report["checks"]["errors as planned"] = report["errors"] == report["expected_errors"]
    report["ok"] = all(report["checks"].values())
    report["paths"] = paths
    report["groups_caught"] = groups
    return report


# --- phase 2: proxies -------------------------------------------------------------------

class Calls:
    """Proxy operations made, by kind; `total` drives the progress."""

    def __init__(self):
        self.kinds = {}
        self.total = 0

    def add(self, kind, k=1):
        self.kinds[kind] = self.kinds.get(kind, 0) + k
        self.total += k
        PROGRESS.done = self.total


def phase_proxies(target, owners_ranks):
    calls = Calls()
    problems = []

    def problem(what):
        if len(problems) < 20:
            problems.append(what)

    everyone = list(range(parc.size()))
    baseline = {r: parc.live_objects(r) for r in everyone}
    live_seen = []  # (calls done, {rank: live objects})
    keys = itertools.count(1)  # every add gets its own k
    rows = 512
    expected_array = np.arange(rows, dtype=np.int64) * 3

    counters = {r: parc.Proxy.create(Counter, owner=r) for r in owners_ranks}
    arrays = {r: parc.Proxy.create(np.multiply, np.arange(rows, dtype=np.int64), 3, owner=r)
              for r in owners_ranks}
    calls.add("create", 2 * len(owners_ranks))
    sent = {r: [0, 0, 0] for r in owners_ranks}  # total, count, xor of the ks sent

    def sent_to(r, k):
        s = sent[r]
        s[0] += k
        s[1] += 1
        s[2] ^= k

    def check_add(reply, k, where):
        if not (isinstance(reply, tuple) and len(reply) == 2 and reply[0] == k):
            problem(f"{where}: add({k}) answered {reply!r}")

    churned = 0
    returned = 0
    next_live = max(1, target // 10)
    with parc.TaskFarm() as farm:
        i = 0
        while calls.total < target:
            r = owners_ranks[i % len(owners_ranks)]
            counter = counters[r]
            # a synchronous call, async_ futures, an attribute read
            k = next(keys)
            check_add(counter.add(k), k, f"rank {r} sync")
            sent_to(r, k)
            calls.add("sync call")
            ks = [next(keys) for _ in range(8)]
            futures = [counter.async_.add(k) for k in ks]
            for k, f in zip(ks, futures):
                check_add(f.result(), k, f"rank {r} async")
                sent_to(r, k)
            calls.add("async call", len(ks))
            count = counter.count
            calls.add("attribute read")
            if count != sent[r][1]:
                problem(f"rank {r}: count {count} after {sent[r][1]} adds")

            if i % 4 == 0:
                # an object created and dropped, its proxy a task's argument
                start = next(keys)
                owner = owners_ranks[(i // 4) % len(owners_ranks)]
                temp = parc.Proxy.create(Counter, start, owner=owner)
                k1, k2 = next(keys), next(keys)
                check_add(temp.add(k1), k1, "temporary")
                reply = farm.submit(bump, temp, k2).result()
                check_add(reply, k2, "temporary, from a task")
                state = temp.state()
                if state != (start + k1 + k2, 2, k1 ^ k2):
                    problem(f"temporary Counter({start}): state {state}, expected "
                            f"{(start + k1 + k2, 2, k1 ^ k2)}")
                calls.add("create", 1)
                calls.add("sync call", 2)
                calls.add("call from a task", 1)
                del temp
                churned += 1
                # tasks calling the long-lived counters (remote or local to the task)
                ks = [next(keys) for _ in range(8)]
                targets = [owners_ranks[(i + j) % len(owners_ranks)] for j in range(len(ks))]
                for k, t, reply in zip(ks, targets,
                                       farm.map(bump, [counters[t] for t in targets], ks,
                                                progress=False)):
                    check_add(reply, k, f"rank {t}, from a task")
                    sent_to(t, k)
                calls.add("call from a task", len(ks))

            if i % 16 == 0:
                array = arrays[r]
                whole = array.resolve()
                part = array[100:200]
                calls.add("raw read", 2)
                if not (np.array_equal(whole, expected_array)
                        and np.array_equal(part, expected_array[100:200])):
                    problem(f"rank {r}: array read wrong")

            if i % 32 == 0:
                # an object created by a task on its rank, returned as a proxy
                start = next(keys)
                made = farm.submit(make_counter, start).result()
                k = next(keys)
                check_add(made.add(k), k, "task-made")
                total = made.total
                if total != start + k:
                    problem(f"task-made Counter({start}) on rank {made.owner}: total {total}")
                calls.add("call from a task", 1)  # the create, inside the task (local)
                calls.add("sync call", 1)
                calls.add("attribute read", 1)
                del made
                returned += 1

            if calls.total >= next_live:
                live_seen.append((calls.total, {r: parc.live_objects(r) for r in everyone}))
                next_live += max(1, target // 10)
            i += 1

    for r in owners_ranks:
        state = counters[r].state()
        calls.add("sync call")
        if state != tuple(sent[r]):
            problem(f"rank {r}: Counter state (total, count, xor) {state}, sent {tuple(sent[r])}")
    finals = {r: counters[r].state() for r in owners_ranks}
    del counters, arrays, counter, array
    gc.collect()
    after = {r: parc.live_objects(r) for r in everyone}
    leaked = {r: after[r] - baseline[r] for r in everyone if after[r] != baseline[r]}
    if leaked:
        problem(f"live_objects not back to the baseline: {leaked} more than at the start")
    return {
        "calls": calls.total, "by_kind": calls.kinds, "adds_per_rank": {r: sent[r][1] for r in sent},
        "counter_states": {r: list(finals[r]) for r in finals},
        "temporaries_created_and_dropped": churned, "task_made_proxies": returned,
        "live_objects_baseline": baseline, "live_objects_end": after,
        "live_objects_during": live_seen,
        "max_live_objects_during": max((max(v.values()) for _, v in live_seen), default=None),
        "problems": problems, "ok": not problems,
    }


# --- analysis and reports ----------------------------------------------------------------

def fit(points):
    """Least-squares slope of y against x (per unit of x), or None."""
    if len(points) < 3:
        return None
    xs = np.array([p[0] for p in points], dtype=float)
    ys = np.array([p[1] for p in points], dtype=float)
    if np.ptp(xs) == 0:
        return None
    return float(np.polyfit(xs, ys, 1)[0])


def analyse(samples, phase, total, ranks, warmup):
    rows = [s for s in samples if s[1] == phase]
    start = warmup * total
    out = []
    for r in ranks:
        series = [(done, rss[r]) for _, _, done, rss in rows if rss[r] is not None]
        if not series:
            out.append({"rank": r, "samples": 0})
            continue
        after = [(d, v) for d, v in series if d >= start]
        slope = fit(after)  # bytes per unit of work
        warm = after[0] if after else series[-1]
        end = series[-1]
        span = (end[0] - warm[0])
        out.append({
            "rank": r, "samples": len(series), "samples_after_warmup": len(after),
            "rss_start_mib": series[0][1] / MIB,
            "rss_warmup_end_mib": warm[1] / MIB, "warmup_end_at": warm[0],
            "rss_end_mib": end[1] / MIB, "rss_max_mib": max(v for _, v in series) / MIB,
            "growth_after_warmup_mib": (end[1] - warm[1]) / MIB,
            "slope_bytes_per_1000": None if slope is None else slope * 1000,
            "slope_mib_per_million": None if slope is None else slope * 1e6 / MIB,
            "fitted_growth_after_warmup_mib": None if slope is None else slope * span / MIB,
        })
    return out


def judge(rss, limit_per_unit, min_growth_mib, phase, unit):
    """Messages for the ranks whose slope is over the limit while growing materially."""
    bad = []
    for row in rss:
        slope = row.get("slope_bytes_per_1000")
        grown = row.get("fitted_growth_after_warmup_mib")
        if slope is None:
            continue
        if slope / 1000 > limit_per_unit and grown >= min_growth_mib:
            bad.append(f"{phase}: rank {row['rank']} RSS grows {slope:.0f} bytes per 1000 "
                       f"{unit} ({row['slope_mib_per_million']:.1f} MiB per 10^6 {unit}; "
                       f"{grown:.1f} MiB after the warm-up), over the limit of "
                       f"{limit_per_unit:g} bytes per {unit[:-1]}")
    return bad


def fmt(value, digits=1):
    return "—" if value is None else f"{value:.{digits}f}"


def markdown(result):
    lines = []
    add = lines.append
    m = result["meta"]
    add("# parc soak")
    add("")
    add(f"{m['date']}, {m['cores']} cores, {m['ranks']} ranks (rank 0 manages, "
        f"{m['ranks'] - 1} workers), Python {m['python']}, numpy {m['numpy']}, parc "
        f"{m['parc']}, host {m['host']}; machine load average {m['load_before']} before, "
        f"{m['load_after']} after.")
    add(f"Command: `{m['command']}`")
    add("")
    add(f"**Verdict: {'PASS' if result['ok'] else 'FAIL'}**"
        + ("" if result["ok"] else ": " + "; ".join(result["failures"])))
    add("")
    t, p = result["tasks"], result["proxies"]
    add("| phase | work | seconds | rate | exactly once |")
    add("|---|---|---|---|---|")
    add(f"| 1. tasks | {t['inputs']} tasks ({t['results']} results, {t['errors']} errors) | "
        f"{t['seconds']:.1f} | {t['tasks_per_s']:.0f} tasks/s | "
        f"{'yes' if t['ok'] else 'NO'}: {t['missing']} missing, {t['duplicates']} duplicated, "
        f"{t['wrong']} wrong |")
    add(f"| 2. proxies | {p['calls']} proxy calls | {p['seconds']:.1f} | "
        f"{p['calls_per_s']:.0f} calls/s | {'yes' if p['ok'] else 'NO'}"
        f"{'' if p['ok'] else ': ' + '; '.join(p['problems'][:3])} |")
    add("")
    add("Task paths: " + ", ".join(f"{k} {v}" for k, v in t["paths"].items())
        + f"; {t['groups_caught']} ParallelException groups caught.")
    add("Proxy calls by kind: " + ", ".join(f"{k} {v}" for k, v in p["by_kind"].items())
        + f"; {p['temporaries_created_and_dropped']} temporaries created, passed to a task "
        f"and dropped, {p['task_made_proxies']} proxies made by tasks and returned.")
    add(f"live_objects per rank: baseline {p['live_objects_baseline']}, at the end "
        f"{p['live_objects_end']}, at most {p['max_live_objects_during']} during the phase.")
    add("")
    for phase, unit, per in (("tasks", "tasks", "10^6 tasks"), ("proxies", "calls", "10^6 calls")):
        add(f"RSS, phase {phase} (MiB; warm-up = first {m['warmup']:.0%} of the {unit}; "
            f"slope = least squares of RSS against {unit} done after the warm-up):")
        add("")
        add(f"| rank | samples | start | warm-up end | end | max | end − warm-up | slope, bytes per 1000 {unit} | slope, MiB per {per} |")
        add("|---|---|---|---|---|---|---|---|---|")
        for row in result["rss"][phase]:
            if not row.get("samples"):
                add(f"| {row['rank']} | 0 | | | | | | | |")
                continue
            add(f"| {row['rank']} | {row['samples']} | {fmt(row['rss_start_mib'])} | "
                f"{fmt(row['rss_warmup_end_mib'])} | {fmt(row['rss_end_mib'])} | "
                f"{fmt(row['rss_max_mib'])} | {fmt(row['growth_after_warmup_mib'], 2)} | "
                f"{fmt(row['slope_bytes_per_1000'], 0)} | {fmt(row['slope_mib_per_million'], 2)} |")
        add("")
    lim = m["limits"]
    add(f"Limits: a slope above {lim['task_bytes']:g} bytes per task or {lim['call_bytes']:g} "
        f"bytes per proxy call fails the run when the fitted growth after the warm-up is at "
        f"least {lim['min_growth_mib']:g} MiB. Samples every {m['interval']} s "
        f"({len(result['samples'])} in all).")
    add("")
    return "\n".join(lines)


def plot(result, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, phase, unit in zip(axes, ("tasks", "proxies"), ("tasks done", "proxy calls done")):
        rows = [s for s in result["samples"] if s[1] == phase]
        for r in range(result["meta"]["ranks"]):
            pts = [(d, rss[r] / MIB) for _, _, d, rss in rows if rss[r] is not None]
            if pts:
                ax.plot(*zip(*pts), marker=".", markersize=3, linewidth=1,
                        label=f"rank {r}" + (" (manager)" if r == 0 else ""))
        ax.set_xlabel(unit)
        ax.set_ylabel("RSS, MiB")
        ax.set_title(f"phase {phase}")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--proxy-calls", type=int, default=100_000)
    parser.add_argument("--round", type=int, default=None,
                        help="inputs per round of phase 1 (default: tasks / 50, at least 1000)")
    parser.add_argument("--interval", type=float, default=0.25, help="RSS sampling period, s")
    parser.add_argument("--warmup", type=float, default=0.1,
                        help="fraction of each phase's work before the slope is fitted")
    parser.add_argument("--max-task-slope", type=float, default=64,
                        help="bytes of RSS per task, after the warm-up (default 64)")
    parser.add_argument("--max-call-slope", type=float, default=256,
                        help="bytes of RSS per proxy call, after the warm-up (default 256)")
    parser.add_argument("--min-growth", type=float, default=16,
                        help="MiB of fitted growth after the warm-up below which a slope "
                             "is not judged (default 16)")
    parser.add_argument("--shared-farm", action="store_true",
                        help="run phase 1's map stream and submits on one farm (hangs: a "
                             "parc bug, see bench/README.md); use with --watchdog")
    parser.add_argument("--watchdog", type=float, default=0,
                        help="seconds after which rank 0 prints its threads' stacks and "
                             "exits 1 (default 0: never)")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                      "results", "soak.json"))
    args = parser.parse_args()
    if parc.workers() < 1 or parc.serial():
        print("soak.py: run it under mpiexec.mpich with at least 2 ranks", file=sys.stderr)
        return 2
    if args.watchdog > 0:
        faulthandler.dump_traceback_later(args.watchdog, exit=True)
    ranks = parc.size()
    workers = list(range(1, ranks))
    round_size = args.round or max(1000, args.tasks // 50)
    load_before = os.getloadavg()[0]

    # Every rank's pid and host, from a Probe built there.
    pids, hosts = [os.getpid()], [socket.gethostname()]
    for r in workers:
        probe = parc.Proxy.create(Probe, owner=r)
        pids.append(probe.pid)
        hosts.append(probe.host)
        del probe
    gc.collect()
    same_host = [h == hosts[0] for h in hosts]
    watched = [pid if same else None for pid, same in zip(pids, same_host)]  # /proc: same host
    sampler = Sampler([p if p is not None else -1 for p in watched], args.interval)
    sampler.start()
    print(f"soak: {ranks} ranks (pids {pids}), {args.tasks} tasks in rounds of {round_size}, "
          f"{args.proxy_calls} proxy calls", flush=True)

    PROGRESS.phase, PROGRESS.done = "tasks", 0
    sampler.sample()
    begin = time.perf_counter()
    tasks = phase_tasks(args.tasks, round_size, args.shared_farm)
    tasks["seconds"] = time.perf_counter() - begin
    tasks["tasks_per_s"] = args.tasks / tasks["seconds"]
    sampler.sample()
    print(f"soak: phase 1, {args.tasks} tasks in {tasks['seconds']:.1f} s "
          f"({tasks['tasks_per_s']:.0f} tasks/s), exactly once: {tasks['ok']}", flush=True)

    PROGRESS.phase, PROGRESS.done = "proxies", 0
    sampler.sample()
    begin = time.perf_counter()
    proxies = phase_proxies(args.proxy_calls, workers)
    proxies["seconds"] = time.perf_counter() - begin
    proxies["calls_per_s"] = proxies["calls"] / proxies["seconds"]
    PROGRESS.phase = "end"
    sampler.stop()
    print(f"soak: phase 2, {proxies['calls']} proxy calls in {proxies['seconds']:.1f} s "
          f"({proxies['calls_per_s']:.0f} calls/s), exactly once and no leaked objects: "
          f"{proxies['ok']}", flush=True)

    samples = sampler.samples
    samples = [(t, ph, d, [v if watched[i] is not None else None for i, v in enumerate(rss)])
               for t, ph, d, rss in samples]
    rss = {"tasks": analyse(samples, "tasks", args.tasks, range(ranks), args.warmup),
           "proxies": analyse(samples, "proxies", proxies["calls"], range(ranks), args.warmup)}
    failures = []
    if not tasks["ok"]:
        failures.append("phase 1: outcomes lost, duplicated or wrong: " + ", ".join(
            k for k, ok in tasks["checks"].items() if not ok)
            + (f" ({tasks['anomalies'][:3]})" if tasks["anomalies"] else ""))
    if not proxies["ok"]:
        failures.append("phase 2: " + "; ".join(proxies["problems"][:5]))
    failures += judge(rss["tasks"], args.max_task_slope, args.min_growth, "phase 1", "tasks")
    failures += judge(rss["proxies"], args.max_call_slope, args.min_growth, "phase 2", "calls")

    result = {
        "meta": {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
            "ranks": ranks, "pids": pids, "hosts": hosts, "cores": os.cpu_count(),
            "python": platform.python_version(), "numpy": np.__version__,
            "parc": getattr(parc, "__version__", "?"), "host": socket.gethostname(),
            "round": round_size, "interval": args.interval, "warmup": args.warmup,
            "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
            "limits": {"task_bytes": args.max_task_slope, "call_bytes": args.max_call_slope,
                       "min_growth_mib": args.min_growth},
        },
        "ok": not failures, "failures": failures,
        "tasks": tasks, "proxies": proxies, "rss": rss, "samples": samples,
    }
    out = args.out
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    stem = out[:-5] if out.endswith(".json") else out
    with open(out, "w") as f:
        json.dump(result, f, indent=1, default=str)
    summary = markdown(result)
    with open(stem + ".md", "w") as f:
        f.write(summary)
    plotted = plot(result, stem + ".png")
    print(summary)
    print(f"soak: wrote {out}, {stem}.md" + (f", {stem}.png" if plotted else ""))
    for failure in failures:
        print(f"soak: FAIL: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    parc.run(main)
