"""Farm efficiency by task length: useful time / (workers x elapsed), for compute-bound
tasks of 10 us to 10 ms, parc's TaskFarm.map against multiprocessing.Pool.map (both at
their defaults), with the same number of workers.

    mpiexec.mpich -n W+1 python3 bench_efficiency.py parc       (W workers)
    python3 bench_efficiency.py pool W

Prints one JSON line per task length: {"tool", "workers", "task_us", "tasks",
"seconds", "efficiency"}. Each length runs about EFFICIENCY_SECONDS (0.6 s) of work per
worker. engine.sh interleaves the runs and reports the ratios.
"""

import json
import multiprocessing
import os
import sys
import time

LENGTHS_US = [int(x) for x in os.environ.get("TASK_US", "10,100,1000,10000").split(",")]
SECONDS = float(os.environ.get("EFFICIENCY_SECONDS", "0.6"))


def spin(seconds):
    """Compute-bound for `seconds` (a busy loop on the clock)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
    return seconds


def measure(tool, workers, run_map):
    run_map([1e-5] * (100 * workers))  # warm-up: start-up and batch sizing
    for us in LENGTHS_US:
        seconds = us * 1e-6
        n = max(20 * workers, int(SECONDS * workers / seconds))
        start = time.perf_counter()
        total = sum(run_map([seconds] * n))
        elapsed = time.perf_counter() - start
        print(json.dumps({"tool": tool, "workers": workers, "task_us": us, "tasks": n,
                          "seconds": elapsed, "efficiency": total / (workers * elapsed)}),
              flush=True)


def parc_main():
    import parc

    with parc.TaskFarm() as farm:
        measure("parc", parc.workers(), lambda xs: list(farm.map(spin_closure, xs)))


if __name__ == "__main__":
    if sys.argv[1] == "pool":
        workers = int(sys.argv[2])
        with multiprocessing.Pool(workers) as pool:
            measure("multiprocessing.Pool", workers, lambda xs: pool.map(spin, xs))
    else:
        import parc

        spin_closure = parc.closure(spin)
        parc.run(parc_main)
