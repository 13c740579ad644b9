"""A chain of dependent tasks over a large array: make(MB) -> step -> ... -> step (LINKS
links), then the result fetched on the manager. Each step adds 1 to every element (a new
array). Prints one JSON line per run:

    mpiexec.mpich -n N python3 bench_dataflow.py parc-keep|parc-through   (parc, rank 0)
    python3 bench_dataflow.py dask WORKERS                                (Dask distributed)
    python3 bench_dataflow.py report RAW.jsonl OUT.md                     (the tables)

parc-keep: TaskFarm(keep_results=True), each link's input read from the worker that made
it; parc-through: keep_results=False, every result back to rank 0 and out again (parc's
only path before futures could be arguments; the same as f.result() then submit). Dask
keeps results on its workers too. Measured: seconds for the chain (its last future done),
for the final fetch, and the manager's (client's) peak RSS growth, which is what passes
through it. Settings: DATAFLOW_MB (default 100), DATAFLOW_LINKS (default 8), BENCH_ROUND.
"""

import json
import os
import resource
import statistics
import sys
import time

import numpy as np

MB = int(os.environ.get("DATAFLOW_MB", "100"))
LINKS = int(os.environ.get("DATAFLOW_LINKS", "8"))
ROUND = int(os.environ.get("BENCH_ROUND", "1"))


def make(megabytes):
    return np.ones(megabytes * 131072)


def step(a):
    return a + 1.0


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def chain(submit, wait, fetch):
    """(seconds to the last link done, seconds to fetch it, peak RSS growth, checksum)."""
    before = peak_mb()
    start = time.perf_counter()
    a = submit(make, MB)
    for _ in range(LINKS):
        a = submit(step, a)
    wait(a)
    done = time.perf_counter()
    value = fetch(a)
    fetched = time.perf_counter()
    return done - start, fetched - done, peak_mb() - before, float(value[0])


def emit(tool, workers, seconds, fetch_seconds, grown_mb, first):
    assert first == 1.0 + LINKS, first
    print(json.dumps({"tool": tool, "workers": workers, "round": ROUND, "mb": MB,
                      "links": LINKS, "chain_s": seconds, "fetch_s": fetch_seconds,
                      "manager_growth_mb": grown_mb}), flush=True)


def run_parc(tool):
    import parc

    global make, step
    make, step = parc.closure(make), parc.closure(step)

    def main():
        with parc.TaskFarm(keep_results=tool == "parc-keep") as farm:
            chain(farm.submit, lambda f: parc.wait([f]), lambda f: f.result())  # warm-up
            emit(tool, parc.workers(), *chain(farm.submit, lambda f: parc.wait([f]),
                                              lambda f: f.result()))

    parc.run(main)


def run_dask(workers):
    import logging
    from distributed import Client, LocalCluster, wait

    logging.getLogger("distributed").setLevel(logging.ERROR)
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=logging.ERROR) as cluster, \
            Client(cluster) as client:
        submit = lambda fn, *args: client.submit(fn, *args, pure=False)
        chain(submit, wait, lambda f: f.result())  # warm-up
        emit("dask", workers, *chain(submit, wait, lambda f: f.result()))


def report(raw, out):
    rows = [json.loads(line) for line in open(raw) if line.startswith("{")]
    by = {}
    for row in rows:
        by.setdefault((row["workers"], row["tool"]), []).append(row)
    median = lambda key, runs: statistics.median(r[key] for r in runs)
    lines = [f"# A chain of dependent tasks over a large array",
             "",
             f"`make({rows[0]['mb']} MB)` then {rows[0]['links']} links of `step(a) = a + 1`, "
             "each taking the previous link's future, then the last result fetched on the "
             "manager. Medians of the rounds (interleaved); the manager's growth is its peak "
             "RSS growth over the chain and the fetch: what passed through it.",
             "",
             "| workers | tool | rounds | chain, s | per link, ms | fetch, s | manager growth, MB |"
             " chain time vs parc-through |",
             "|---|---|---|---|---|---|---|---|"]
    for (workers, tool), runs in sorted(by.items()):
        seconds = median("chain_s", runs)
        through = by.get((workers, "parc-through"))
        ratio = f"{seconds / median('chain_s', through):.2f}" if through else "-"
        lines.append(f"| {workers} | {tool} | {len(runs)} | {seconds:.2f} | "
                     f"{1000 * seconds / (runs[0]['links'] + 1):.0f} | "
                     f"{median('fetch_s', runs):.2f} | {median('manager_growth_mb', runs):.0f} | "
                     f"{ratio} |")
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    what = sys.argv[1]
    if what.startswith("parc"):
        run_parc(what)
    elif what == "dask":
        run_dask(int(sys.argv[2]))
    elif what == "report":
        report(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"bench_dataflow.py: unknown {what!r}: parc-keep, parc-through, dask, report")
