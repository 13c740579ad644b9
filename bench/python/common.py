"""Shared measuring code for the Python benchmarks: every tool runs the same three
measurements through small adapters, and prints one JSON object per figure.

    throughput(tool, mode, run)    run(n) executes n no-op tasks, returns the results
    latency(tool, call)            call(i) submits one no-op and waits for its result
    payload(tool, echo, total)     echo(arr) -> arr and total(arr) -> arr.sum(), synchronous

Settings through the environment: BENCH_ROUND (copied into every line), MIN_SECONDS
(length of a timed throughput run, default 1), MAX_TASKS (cap on N, default 2**22),
LATENCY_ITERS (default 2000, after 200 warm-up calls), PAYLOAD_SECONDS (time per size
and direction, default 0.25), PAYLOAD_MAX (largest array in bytes, default 16 MiB).
"""

import json
import os
import platform
import statistics
import sys
import time

import numpy as np

ROUND = int(os.environ.get("BENCH_ROUND", "1"))
MIN_SECONDS = float(os.environ.get("MIN_SECONDS", "1"))
MAX_TASKS = int(os.environ.get("MAX_TASKS", str(1 << 22)))
LATENCY_ITERS = int(os.environ.get("LATENCY_ITERS", "2000"))
LATENCY_WARMUP = 200
PAYLOAD_SECONDS = float(os.environ.get("PAYLOAD_SECONDS", "0.25"))
PAYLOAD_MAX = int(os.environ.get("PAYLOAD_MAX", str(16 << 20)))
SIZES = [s for s in (1 << 10, 16 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20) if s <= PAYLOAD_MAX]


def parts(argv):
    """The parts named on the command line (default: all three)."""
    wanted = argv[1].split(",") if len(argv) > 1 else ["throughput", "latency", "payload"]
    unknown = set(wanted) - {"throughput", "latency", "payload"}
    if unknown:
        sys.exit(f"unknown part(s) {sorted(unknown)}; use throughput,latency,payload")
    return wanted


def emit(tool, bench, **fields):
    print(json.dumps({"tool": tool, "bench": bench, "round": ROUND, **fields}), flush=True)


def versions(tool, **fields):
    emit(tool, "versions", python=platform.python_version(), numpy=np.__version__, **fields)


def throughput(tool, mode, run):
    """Doubles n from 1000 until a run takes MIN_SECONDS / 4 (the warm-up), then times
    one run of 4n tasks (so MIN_SECONDS to 2 * MIN_SECONDS), or of MAX_TASKS."""
    n = 1000
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
    """Synchronous round trips, one clock read pair around each."""
    for i in range(LATENCY_WARMUP):
        call(i)
    times = []
    clock = time.perf_counter_ns
    for i in range(LATENCY_ITERS):
        start = clock()
        out = call(i)
        times.append(clock() - start)
        if out != i:
            raise AssertionError(f"{tool} latency: got {out!r} for {i}")
    times.sort()
    emit(tool, "latency", n=len(times),
         median_us=statistics.median(times) / 1e3,
         p90_us=times[int(0.9 * len(times))] / 1e3,
         mean_us=statistics.fmean(times) / 1e3)


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


def echo(arr):
    return arr


def total(arr):
    return arr.sum()


def measure_executor(tool, pool, wanted, noop=noop, echo=echo, total=total):
    """The measurements every concurrent.futures executor gets, the same way."""
    pool.submit(noop, 0).result()  # waits for the worker to be up
    if "throughput" in wanted:
        throughput(tool, "map", lambda n: list(pool.map(noop, range(n))))
        throughput(tool, "submit",
                   lambda n: [f.result() for f in [pool.submit(noop, i) for i in range(n)]])
    if "latency" in wanted:
        latency(tool, lambda i: pool.submit(noop, i).result())
    if "payload" in wanted:
        payload(tool, lambda a: pool.submit(echo, a).result(),
                lambda a: pool.submit(total, a).result())
