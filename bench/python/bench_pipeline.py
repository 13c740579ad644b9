"""Pipeline throughput of small items: parc.Pipeline against the same three stages as a
chain of concurrent.futures executors (ProcessPoolExecutor per stage, at defaults).

    mpiexec.mpich -n 5 python3 bench_pipeline.py parc     # 4 workers: 1 + 2 + 1
    python3 bench_pipeline.py executors                    # 4 processes: 1 + 2 + 1

Stages: add_one (1 worker) -> double (2 workers) -> minus_one (1 worker) over range(n);
the output is checked. PIPELINE_TASK_US=50 makes every stage compute for 50 us per item
(default 0: no-op stages). Prints one JSON line per measurement (see common.py):
{"tool", "bench": "pipeline", "n", "seconds", "items_per_s", "task_us"}.
"""

import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import common


TASK_US = float(os.environ.get("PIPELINE_TASK_US", "0"))


def add_one(x):
    if TASK_US:
        common.spin(TASK_US * 1e-6)
    return x + 1


def double(x):
    if TASK_US:
        common.spin(TASK_US * 1e-6)
    return 2 * x


def minus_one(x):
    if TASK_US:
        common.spin(TASK_US * 1e-6)
    return x - 1


def expected(n):
    return [2 * x + 1 for x in range(n)]


def timed(tool, run):
    """Doubles n from 1000 until a run takes MIN_SECONDS / 4, then times 4n items."""
    n = 1000
    while True:
        start = time.perf_counter()
        out = run(n)
        seconds = time.perf_counter() - start
        if out != expected(n):
            raise AssertionError(f"{tool}: wrong output for n={n}")
        if seconds >= common.MIN_SECONDS / 4 or n >= common.MAX_TASKS:
            break
        n *= 2
    n = min(4 * n, common.MAX_TASKS)
    start = time.perf_counter()
    out = run(n)
    seconds = time.perf_counter() - start
    if out != expected(n):
        raise AssertionError(f"{tool}: wrong output for n={n}")
    common.emit(tool, "pipeline", n=n, seconds=seconds, items_per_s=n / seconds,
                task_us=TASK_US)


def bench_parc():
    import parc

    def main():
        pipeline = parc.Pipeline([add_one, parc.Stage(double, workers=2), minus_one])
        timed("parc", lambda n: list(pipeline.run(range(n))))

    parc.run(main)


def bench_executors():
    with ProcessPoolExecutor(1) as first, ProcessPoolExecutor(2) as second, \
            ProcessPoolExecutor(1) as third:
        def run(n):
            return list(third.map(minus_one, second.map(double, first.map(add_one, range(n)))))

        timed("executors", run)


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in ("parc", "executors"):
        sys.exit("usage: bench_pipeline.py parc|executors")
    bench_parc() if sys.argv[1] == "parc" else bench_executors()
