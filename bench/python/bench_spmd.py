"""parc's Python SPMD ctx.allreduce, timed as raw_allreduce.c times MPI_Allreduce:

    PYTHONPATH=build/python mpiexec.mpich -n N python3 bench_spmd.py \
        [iterations=20000] [trials=3] [warmup=2000]

One region over every worker (N-1 ranks: compare with raw_allreduce at -n N-1). For
each kind of value, after a warm-up, each of `trials` trials (each after a
ctx.barrier()) times `iterations` ctx.allreduce(value, parc.SUM) calls, reading the clock
once per call on region rank 0. The kinds:

    float   a Python float: reduced inside MPI (MPI_DOUBLE), no pickling
    array   a numpy array of 8 float64: reduced inside MPI, elementwise, no pickling
    int     a Python int: no native path, so allgather of pickles and a fold

Prints "name value" lines, as the C++ benchmarks do: py_allreduce_<kind>_us (median
over trials of a trial's mean, µs), _us_min (best trial), _p50_us (median of all
calls), _p99_us; and py_allreduce_ranks. Every result is checked.
"""

import statistics
import sys
import time

import numpy as np

import parc

KINDS = {
    "float": lambda rank, i: float(rank + i % 8),
    "array": lambda rank, i: np.full(8, float(rank + i % 8)),
    "int": lambda rank, i: rank + i % 8,
}


def settings(argv):
    values = {"iterations": 20000, "trials": 3, "warmup": 2000}
    for arg in argv[1:]:
        name, _, text = arg.partition("=")
        if name not in values or not text.isdigit():
            sys.exit(f"bench_spmd.py: expected iterations=N, trials=N or warmup=N, got {arg!r}")
        values[name] = int(text)
    if values["iterations"] < 1 or values["trials"] < 1:
        sys.exit("bench_spmd.py: iterations and trials must be >= 1")
    return values


@parc.closure
def time_allreduce(ctx, iterations, trials, warmup):
    """{kind: (median trial mean, best trial mean, p50, p99)} in µs on region rank 0."""
    n = ctx.size
    figures = {}
    for kind, make in KINDS.items():
        # Values and expected sums made beforehand: only the allreduce and a cheap check
        # are timed, as in raw_allreduce.c.
        values = [make(ctx.rank, j) for j in range(8)]
        expected = [n * (n - 1) // 2 + n * j for j in range(8)]
        exact = (lambda got, want: bool((got == want).all())) if kind == "array" else \
            (lambda got, want: got == want)

        def once(i):
            total = ctx.allreduce(values[i % 8], parc.SUM)
            if not exact(total, expected[i % 8]):
                raise AssertionError(f"{kind}: allreduce gave {total!r}, "
                                     f"expected {expected[i % 8]}")

        for i in range(warmup):
            once(i)
        means, samples = [], []
        clock = time.perf_counter_ns
        for _ in range(trials):
            ctx.barrier()
            start = last = clock()
            for i in range(iterations):
                once(i)
                now = clock()
                samples.append((now - last) / 1e3)
                last = now
            means.append((last - start) / 1e3 / iterations)
        samples.sort()
        figures[kind] = (statistics.median_low(means), min(means), samples[len(samples) // 2],
                         samples[len(samples) * 99 // 100])
    return figures if ctx.rank == 0 else None


def main():
    s = settings(sys.argv)
    region = parc.Spmd()
    figures = region.run(time_allreduce, s["iterations"], s["trials"], s["warmup"])[0]
    lines = [f"py_allreduce_ranks {len(region.ranks)}"]
    for kind, (mean, best, p50, p99) in figures.items():
        lines += [f"py_allreduce_{kind}_us {mean:.3f}", f"py_allreduce_{kind}_us_min {best:.3f}",
                  f"py_allreduce_{kind}_p50_us {p50:.3f}", f"py_allreduce_{kind}_p99_us {p99:.3f}"]
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    parc.run(main)
