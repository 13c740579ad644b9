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

import functools
import json
import os
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


def memory_mb(field):
    """VmRSS (now) or VmHWM (the peak since the last reset_peak) of this process."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM back to VmRSS (Linux 4.0+)


def chain(submit, wait, fetch):
    """(seconds to the last link done, seconds to fetch it, peak RSS growth, checksum,
    peak RSS growth before the fetch)."""
    reset_peak()
    before = memory_mb("VmRSS")
    start = time.perf_counter()
    a = submit(make, MB)
    for _ in range(LINKS):
        a = submit(step, a)
    wait(a)
    done = time.perf_counter()
    chain_growth = memory_mb("VmHWM") - before
    value = fetch(a)
    fetched = time.perf_counter()
    return (done - start, fetched - done, memory_mb("VmHWM") - before, float(value[0]),
            chain_growth)


def emit(tool, workers, cold, warm):
    """The memory growth of the first chain (nothing cached from an earlier one), the
    times of the second (closures shipped, connections made)."""
    assert cold[3] == warm[3] == 1.0 + LINKS, (cold, warm)
    print(json.dumps({"tool": tool, "workers": workers, "round": ROUND, "mb": MB,
                      "links": LINKS, "chain_s": warm[0], "fetch_s": warm[1],
                      "manager_growth_mb": cold[2], "chain_growth_mb": cold[4]}), flush=True)


def run_parc(tool):
    import parc

    global make, step
    make, step = parc.closure(make), parc.closure(step)

    def main():
        with parc.TaskFarm(keep_results=tool == "parc-keep") as farm:
            run = functools.partial(chain, farm.submit, lambda f: parc.wait([f]),
                                    lambda f: f.result())
            emit(tool, parc.workers(), run(), run())

    parc.run(main)


def run_dask(workers):
    import logging
    from distributed import Client, LocalCluster, wait

    logging.getLogger("distributed").setLevel(logging.ERROR)
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=logging.ERROR) as cluster, \
            Client(cluster) as client:
        submit = lambda fn, *args: client.submit(fn, *args, pure=False)
        run = functools.partial(chain, submit, wait, lambda f: f.result())
        emit("dask", workers, run(), run())


def round_ratios(runs, peers):
    """chain_s of runs over that of peers, within each round both have, by round."""
    peer = {r["round"]: r["chain_s"] for r in peers}
    return [r["chain_s"] / peer[r["round"]] for r in sorted(runs, key=lambda r: r["round"])
            if r["round"] in peer]


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
             "manager. Medians of the rounds (interleaved). Times are those of a second chain "
             "in the same process; the manager's (client's) peak RSS growth is that of the "
             "first, over the chain and then with the final fetch: what passed through it "
             "at once (through rank 0, each link's array comes in and goes out again: "
             f"{2 * (rows[0]['links'] + 1) * rows[0]['mb']} MB in all).",
             "",
             "| workers | tool | rounds | chain, s | per link, ms | fetch, s | manager peak "
             "growth: chain, MB | with the fetch, MB | chain time / parc-through's: median "
             "(each round) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for (workers, tool), runs in sorted(by.items()):
        seconds = median("chain_s", runs)
        ratio = round_ratios(runs, by.get((workers, "parc-through"), []))
        ratio = "-" if not ratio else f"{statistics.median(ratio):.2f} (" + ", ".join(
            f"{r:.2f}" for r in ratio) + ")"
        lines.append(f"| {workers} | {tool} | {len(runs)} | {seconds:.2f} | "
                     f"{1000 * seconds / (runs[0]['links'] + 1):.0f} | "
                     f"{median('fetch_s', runs):.2f} | {median('chain_growth_mb', runs):.0f} | "
                     f"{median('manager_growth_mb', runs):.0f} | "
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
