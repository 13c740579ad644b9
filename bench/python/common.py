"""Shared measuring code for the Python benchmarks: every tool runs the same measurements
through a small adapter (`Api`), and prints one JSON object per figure.

    throughput(tool, mode, run)          run(n) executes n no-op tasks, returns the results
    latency(tool, call)                  call(i) submits one no-op and waits for its result
    efficiency(tool, workers, run_map)   compute-bound tasks of 10 us .. 10 ms through map
    payload(tool, echo, total)           echo(arr) -> arr and total(arr) -> arr.sum(), synchronous

`measure(tool, api, wanted, tasks)` runs the parts wanted, the same way for every tool.

Settings through the environment: BENCH_ROUND (copied into every line), BENCH_SCALE
(multiplies every time setting below, default 1; e.g. 0.05 for a smoke run), MIN_SECONDS
(length of a timed throughput run, default 1), MAX_TASKS (cap on N, default 2**22),
LATENCY_ITERS (default 2000, after up to 200 warm-up calls), LATENCY_MAX_SECONDS (a cap on
the timed calls, default 1), EFFICIENCY_SECONDS (work per worker and task length, default
0.6), EFFICIENCY_CAP (expected seconds per task length above which a slow tool runs a
prefix of the task list, default 2), TASK_US (default 10,100,1000,10000), PAYLOAD_SECONDS
(time per size and direction, default 0.25), PAYLOAD_MAX (largest array in bytes,
default 16 MiB).
"""

import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

ROUND = int(os.environ.get("BENCH_ROUND", "1"))
SCALE = float(os.environ.get("BENCH_SCALE", "1"))


def _seconds(name, default):
    return float(os.environ.get(name, str(default * SCALE)))


MIN_SECONDS = _seconds("MIN_SECONDS", 1)
MAX_TASKS = int(os.environ.get("MAX_TASKS", str(1 << 22)))
LATENCY_ITERS = int(os.environ.get("LATENCY_ITERS", "2000"))
LATENCY_WARMUP = 200
LATENCY_MAX_SECONDS = _seconds("LATENCY_MAX_SECONDS", 1)
EFFICIENCY_SECONDS = _seconds("EFFICIENCY_SECONDS", 0.6)
EFFICIENCY_CAP = _seconds("EFFICIENCY_CAP", 2)
TASK_US = [int(x) for x in os.environ.get("TASK_US", "10,100,1000,10000").split(",")]
PAYLOAD_SECONDS = _seconds("PAYLOAD_SECONDS", 0.25)
PAYLOAD_MAX = int(os.environ.get("PAYLOAD_MAX", str(16 << 20)))
SIZES = [s for s in (1 << 10, 16 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20) if s <= PAYLOAD_MAX]
PARTS = ("throughput", "latency", "efficiency", "payload")
WORKERS = 1  # copied into every line; versions() sets it


def parts(argv):
    """The parts named on the command line (argv[1], default: all)."""
    wanted = argv[1].split(",") if len(argv) > 1 and argv[1] else list(PARTS)
    unknown = set(wanted) - set(PARTS)
    if unknown:
        sys.exit(f"unknown part(s) {sorted(unknown)}; use {','.join(PARTS)}")
    return wanted


def emit(tool, bench, **fields):
    print(json.dumps({"tool": tool, "bench": bench, "round": ROUND, "workers": WORKERS, **fields}),
          flush=True)


def versions(tool, workers, **fields):
    """The first line of a tool's run; sets the worker count every later line carries."""
    global WORKERS
    WORKERS = workers
    emit(tool, "versions", python=platform.python_version(), numpy=np.__version__, **fields)


def throughput(tool, mode, run):
    """Doubles n from 100 until a run takes MIN_SECONDS / 4 (the warm-up), then times
    one run of 4n tasks (so MIN_SECONDS to 2 * MIN_SECONDS), or of MAX_TASKS."""
    n = 100
    while True:
        start = time.perf_counter()
        out = run(n)
        seconds = time.perf_counter() - start
        check(tool, mode, out, n)
        if seconds >= MIN_SECONDS / 4 or n >= MAX_TASKS:
            break
        n *= 2
    n = min(4 * n, MAX_TASKS)
    start = time.perf_counter()
    out = run(n)
    seconds = time.perf_counter() - start
    check(tool, mode, out, n)
    emit(tool, "throughput", mode=mode, n=n, seconds=seconds, tasks_per_s=n / seconds)


def check(tool, mode, out, n):
    if list(out) != list(range(n)):
        raise AssertionError(f"{tool} {mode}: wrong results for n={n}")


def latency(tool, call):
    """Synchronous round trips, one clock read pair around each: LATENCY_ITERS of them, or
    fewer (at least 20) when they take more than LATENCY_MAX_SECONDS; after up to 200
    warm-up calls (at most a fifth of that time)."""
    begin = time.perf_counter()
    for i in range(LATENCY_WARMUP):
        call(i)
        if time.perf_counter() - begin > LATENCY_MAX_SECONDS / 5:
            break
    times = []
    clock = time.perf_counter_ns
    deadline = clock() + LATENCY_MAX_SECONDS * 1e9
    for i in range(LATENCY_ITERS):
        start = clock()
        out = call(i)
        end = clock()
        times.append(end - start)
        if out != i:
            raise AssertionError(f"{tool} latency: got {out!r} for {i}")
        if end > deadline and len(times) >= 20:
            break
    times.sort()
    emit(tool, "latency", n=len(times),
         median_us=statistics.median(times) / 1e3,
         p90_us=times[int(0.9 * len(times))] / 1e3,
         mean_us=statistics.fmean(times) / 1e3)


def task_list(workers, us):
    """The compute-bound tasks of one length, the same list for every tool: about
    EFFICIENCY_SECONDS of work per worker, at least 20 tasks per worker."""
    seconds = us * 1e-6
    return [seconds] * max(20 * workers, round(EFFICIENCY_SECONDS * workers / seconds))


def efficiency(tool, workers, run_map, spin, noop):
    """Useful time / (workers x elapsed) of map over each length's task_list, results
    checked. A tool whose run would take more than EFFICIENCY_CAP seconds, reckoned from
    the work per worker plus its no-op map rate (measured first, also a warm-up), runs the
    first part of the list that fits (at least 20 tasks per worker); `tasks` says how many."""
    n = 100
    while True:  # the no-op rate: map runs of 100, 400, ... tasks until one takes 0.1 s
        start = time.perf_counter()
        run_map(noop, range(n))
        seconds = time.perf_counter() - start
        if seconds >= 0.1 * SCALE or n >= 1 << 16:
            break
        n *= 4
    rate = n / seconds
    for us in TASK_US:
        tasks = task_list(workers, us)
        expected = len(tasks) * (tasks[0] / workers + 1 / rate)
        if expected > EFFICIENCY_CAP:
            tasks = tasks[:max(20 * workers, int(len(tasks) * EFFICIENCY_CAP / expected))]
        start = time.perf_counter()
        out = list(run_map(spin, tasks))
        elapsed = time.perf_counter() - start
        if out != tasks:
            raise AssertionError(f"{tool} efficiency, {us} us tasks: wrong results")
        emit(tool, "efficiency", task_us=us, tasks=len(tasks),
             listed=len(task_list(workers, us)), seconds=elapsed,
             efficiency=sum(tasks) / (workers * elapsed))


def payload(tool, echo, total):
    """One float64 array per size, sent synchronously; 'echo' returns it (bytes move
    both ways: MB/s counts 2 x size), 'sum' returns arr.sum() (one way: size). Each
    figure is the median time per call over PAYLOAD_SECONDS after 2 warm-up calls."""
    for size in SIZES:
        arr = np.arange(size // 8, dtype=np.float64)
        expected_sum = arr.sum()
        for direction, call, moved in (("echo", echo, 2 * size), ("sum", total, size)):
            for _ in range(2):
                out = call(arr)
            if direction == "echo" and not np.array_equal(out, arr):
                raise AssertionError(f"{tool} echo of {size} B: wrong array back")
            if direction == "sum" and out != expected_sum:
                raise AssertionError(f"{tool} sum of {size} B: {out} != {expected_sum}")
            times = []
            begin = time.perf_counter()
            while len(times) < 5 or time.perf_counter() - begin < PAYLOAD_SECONDS:
                start = time.perf_counter()
                call(arr)
                times.append(time.perf_counter() - start)
            seconds = statistics.median(times)
            emit(tool, "payload", mode=direction, bytes=size, calls=len(times),
                 call_us=seconds * 1e6, mb_per_s=moved / seconds / 1e6)


# The tasks the peers run (parc declares its own as closures in bench_parc.py).
def noop(x):
    return x


def spin(seconds):
    """Compute-bound for `seconds` (a busy loop on the clock); returns its argument."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
    return seconds


def echo(arr):
    return arr


def total(arr):
    return arr.sum()


@dataclass
class Tasks:
    """The functions a tool runs (parc passes its closures)."""
    noop: Callable = noop
    spin: Callable = spin
    echo: Callable = echo
    total: Callable = total


@dataclass
class Api:
    """How a tool does each measured thing, given a function f:
    map_all(f, xs) -> results of f over xs, in order (the tool's map);
    submit_all(f, xs) -> submits f(x) for every x, then waits for each result in turn;
    call(f, x) -> submits f(x) and waits for its result."""
    map_all: Callable
    submit_all: Callable
    call: Callable


def executor_api(pool):
    """A concurrent.futures.Executor's map, submit and result."""
    return Api(map_all=lambda f, xs: list(pool.map(f, xs)),
               submit_all=lambda f, xs: [fu.result() for fu in [pool.submit(f, x) for x in xs]],
               call=lambda f, x: pool.submit(f, x).result())


def measure(tool, api, wanted, tasks=Tasks()):
    """The measurements every tool gets, the same way, in this order."""
    api.call(tasks.noop, 0)  # waits for a worker to be up
    if "throughput" in wanted:
        throughput(tool, "map", lambda n: api.map_all(tasks.noop, range(n)))
        throughput(tool, "submit", lambda n: api.submit_all(tasks.noop, range(n)))
    if "latency" in wanted:
        latency(tool, lambda i: api.call(tasks.noop, i))
    if "efficiency" in wanted:
        efficiency(tool, WORKERS, api.map_all, tasks.spin, tasks.noop)
    if "payload" in wanted:
        payload(tool, lambda a: api.call(tasks.echo, a), lambda a: api.call(tasks.total, a))
