"""Collects the JSON lines of the remote-read benchmark (bench_bandwidth.py and raw C
raw_bandwidth, all rounds) and writes a Markdown table and a log-log plot like PyGAS's
Figure 1:

    python3 report_bandwidth.py bandwidth.jsonl --md bandwidth.md --png bandwidth.png [--meta "line" ...]

Each figure is the median over the rounds; each ratio is computed within a round (parc
against the peers measured in that round) and the median of those is shown.
"""

import argparse
import json
import statistics
from collections import defaultdict

SERIES = {  # JSON name -> colour, how it is read
    "parc proxy": ("tab:red", "`parc.Proxy.create(np.ones, N, dtype=np.uint8, owner=1).resolve()`, a fresh array per read"),
    "raw C MPI": ("black", "`raw_bandwidth.c` (MPICH): `MPI_Send` of a one-int request, `MPI_Send` of N bytes back, `MPI_Recv` into a preallocated buffer"),
    "mpi4py pickle": ("tab:blue", "`comm.send(n)`, then `comm.send(array)` / `comm.recv()` (pickle path, Open MPI), a fresh array per read"),
    "mpi4py buffer": ("tab:green", "`comm.Send` / `comm.Recv` of an int request and of the array into a preallocated one (Open MPI): mpi4py's best case, not applicable to arbitrary objects"),
}
LATENCY = {
    "parc proxy": "parc `q.add(1)` on a proxy to a `Counter` on rank 1",
    "raw C MPI": "raw C MPI 8-byte request, 8-byte reply (MPICH)",
    "mpi4py pickle": "mpi4py `comm.send((\"add\", 1))` / `comm.recv()` echo (pickle path, Open MPI)",
}
TARGETS = [("raw C MPI", 0.8), ("mpi4py pickle", 5.0)]  # parc / peer at TARGET_BYTES, at least
TARGET_BYTES = 16 << 20


def load(path):
    reads, lat = defaultdict(dict), defaultdict(dict)  # (series, bytes) / series -> round -> value
    with open(path) as f:
        for line in f:
            if line.startswith("{"):
                r = json.loads(line)
                if "bytes" in r:
                    reads[(r["series"], r["bytes"])][r["round"]] = r["bytes"] / r["seconds"] / 1e6
                elif "latency_us" in r:
                    lat[r["series"]][r["round"]] = r["latency_us"]
    return reads, lat


def med(by_round):
    return statistics.median(by_round.values()) if by_round else None


def ratio(a, b):
    """Per-round ratios a/b (rounds where both ran) and their median."""
    rs = [a[k] / b[k] for k in sorted(a) if k in b]
    return (statistics.median(rs) if rs else None), rs


def fmt(x):
    if x is None:
        return "–"
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def times(x):
    return "–" if x is None else f"{x:.2f}×" if x < 10 else f"{x:.1f}×"


def size_name(b):
    for unit, shift in (("MiB", 20), ("KiB", 10)):
        if b >= 1 << shift:
            return f"{b >> shift} {unit}"
    return f"{b} B"


def markdown(meta, reads, lat):
    rounds = sorted({k for d in (*reads.values(), *lat.values()) for k in d})
    series = [s for s in SERIES if any(k[0] == s for k in reads)]
    sizes = sorted({b for _, b in reads})
    out = ["# Remote read bandwidth and proxy call latency (PyGAS Figure 1)", ""]
    out += [f"{m}  " for m in meta]
    out += ["", "A read of N bytes is a request/reply between two ranks: rank 0 asks rank 1, the "
            "owner, and ends up with the N bytes in its memory. Per size, one checked warm-up read, "
            "then reads timed one by one for ≥ `BANDWIDTH_SECONDS` (default 0.2 s) and ≥ 3 reads; a "
            f"round's figure is the median read, shown as N / time in MB/s (10⁶ B/s). {len(rounds)} interleaved round(s) (raw C, "
            "parc, mpi4py, again ...); a figure is the median over the rounds, a ratio the median "
            "of the ratios within each round.", ""]
    out += [f"- **{s}**: {SERIES[s][1]}" for s in series]
    out += ["", "parc and raw C MPI run on MPICH (`mpiexec.mpich`), Debian's mpi4py on Open MPI "
            "(`mpiexec.openmpi`): the mpi4py series also measure a different MPI library.", ""]

    out += ["## Targets", "", f"At {size_name(TARGET_BYTES)}:", "",
            "| ratio | value | target | | per round |", "|---|---:|---|---|---|"]
    for peer, target in TARGETS:
        value, each = ratio(reads.get(("parc proxy", TARGET_BYTES), {}), reads.get((peer, TARGET_BYTES), {}))
        if value is None:
            out.append(f"| bandwidth, parc / {peer} | – | ≥ {target:g}× | not measured | |")
            continue
        verdict = "ok" if value >= target else "**MISSED**"
        out.append(f"| bandwidth, parc / {peer} | {times(value)} | ≥ {target:g}× | {verdict} | "
                   f"{', '.join(f'{x:.3g}' for x in each)} |")

    out += ["", "## Bandwidth, MB/s", "",
            "| size | " + " | ".join(series) + " | parc / raw C | parc / mpi4py pickle |",
            "|---:|" + "---:|" * (len(series) + 2)]
    for b in sizes:
        cells = [fmt(med(reads.get((s, b), {}))) for s in series]
        for peer in ("raw C MPI", "mpi4py pickle"):
            cells.append(times(ratio(reads.get(("parc proxy", b), {}), reads.get((peer, b), {}))[0]))
        out.append(f"| {size_name(b)} | " + " | ".join(cells) + " |")

    out += ["", "## Latency: one small request and its reply", "",
            "Median call over ≥ `LATENCY_SECONDS` (default 0.5 s) after 200 warm-up calls (raw C: median of 3 × 10⁵ round "
            "trips after 10⁴); µs.", "",
            "| series | µs | per round | parc / this |", "|---|---:|---|---:|"]
    for s, label in LATENCY.items():
        if s in lat:
            r = ratio(lat.get("parc proxy", {}), lat[s])[0] if s != "parc proxy" else None
            out.append(f"| {label} | {fmt(med(lat[s]))} | "
                       f"{', '.join(fmt(lat[s][k]) for k in sorted(lat[s]))} | {times(r)} |")
    return "\n".join(out) + "\n"


def plot(path, reads):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.2))
    sizes = sorted({b for _, b in reads})
    for s, (color, _) in SERIES.items():
        points = [(b, med(reads[(s, b)])) for b in sizes if (s, b) in reads]
        if points:
            ax.plot(*zip(*points), marker="o", ms=4, color=color, label=s,
                    lw=2.5 if s == "parc proxy" else 1.5)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(sizes[::2], [size_name(b) for b in sizes[::2]])
    ax.minorticks_off()
    ax.grid(True, which="major", alpha=0.3)
    ax.set_xlabel("bytes read")
    ax.set_ylabel("MB/s (log)")
    ax.set_title("Remote read bandwidth, 2 ranks (median read, median of rounds)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("raw")
    p.add_argument("--md", required=True)
    p.add_argument("--png")
    p.add_argument("--meta", action="append", default=[])
    args = p.parse_args()
    reads, lat = load(args.raw)
    text = markdown(args.meta, reads, lat)
    with open(args.md, "w") as f:
        f.write(text)
    if args.png:
        plot(args.png, reads)
    print(text, end="")


if __name__ == "__main__":
    main()
