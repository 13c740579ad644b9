"""Collects the JSON lines of the Python benchmarks (all rounds) and writes a Markdown
table and a plot:

    python3 report.py raw.jsonl --md python.md --png python.png [--meta "line" ...]

Each figure is the median over the rounds; each ratio is computed within a round (parc
against the peers measured in that round) and the median of those is shown.
"""

import argparse
import json
import statistics
from collections import defaultdict

TOOLS = {
    "parc": "parc `TaskFarm`",
    "mpi4py": "mpi4py.futures `MPIPoolExecutor`",
    "ppe": "`ProcessPoolExecutor(1)`",
    "mp_pool": "`multiprocessing.Pool(1)`",
}
PLAIN = {"parc": "parc", "mpi4py": "mpi4py.futures", "ppe": "ProcessPoolExecutor",
         "mp_pool": "multiprocessing.Pool"}
MODES = {("parc", "map"): "`map`", ("parc", "submit"): "`submit` all, then `result` all",
         ("parc", "submit_batch"): "`submit_batch`, then `result` all"}
COLORS = {"parc": "tab:red", "mpi4py": "tab:blue", "ppe": "tab:green", "mp_pool": "tab:gray"}


def mode_name(tool, mode):
    if (tool, mode) in MODES:
        return MODES[(tool, mode)]
    if mode == "submit":
        return "`apply_async` all, then `get` all" if tool == "mp_pool" else "`submit` all, then `result` all"
    return f"`{mode}` (default chunksize)"


def load(path):
    versions, thr, lat, pay = {}, defaultdict(dict), defaultdict(dict), defaultdict(dict)
    with open(path) as f:
        for line in f:
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            tool, bench, rnd = r["tool"], r["bench"], r["round"]
            if bench == "versions":
                versions.setdefault(tool, r)
            elif bench == "throughput":
                thr[(tool, r["mode"])][rnd] = r
            elif bench == "latency":
                lat[tool][rnd] = r
            elif bench == "payload":
                pay[(tool, r["mode"], r["bytes"])][rnd] = r
    return versions, thr, lat, pay


def med(by_round, key):
    return statistics.median(r[key] for r in by_round.values()) if by_round else None


def ratio(a, b, key):
    """Per-round ratios a/b (rounds where both ran) and their median."""
    rs = [a[k][key] / b[k][key] for k in sorted(a) if k in b]
    return (statistics.median(rs) if rs else None), rs


def fmt(x, digits=3):
    if x is None:
        return "–"
    if x >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def size_name(b):
    return f"{b >> 20} MiB" if b >= 1 << 20 else f"{b >> 10} KiB"


def markdown(meta, versions, thr, lat, pay):
    rounds = sorted({k for d in (*thr.values(), *lat.values(), *pay.values()) for k in d})
    out = ["# parc Python task farm against its peers", ""]
    out += [f"{m}  " for m in meta]
    v = versions
    if v.get("parc", {}).get("version") == "?":  # no parc.__version__
        v["parc"]["version"] = "(no __version__)"
    out.append("Python {}, numpy {}; parc {} ({} worker); mpi4py {} ({}); "
               "ProcessPoolExecutor / multiprocessing start method: {}.".format(
                   v.get("parc", v.get("ppe", {})).get("python", "?"),
                   v.get("parc", v.get("ppe", {})).get("numpy", "?"),
                   v.get("parc", {}).get("version", "?"), v.get("parc", {}).get("workers", "?"),
                   v.get("mpi4py", {}).get("version", "?"), v.get("mpi4py", {}).get("mpi", "?"),
                   v.get("ppe", {}).get("start_method", "?")))
    out += ["", f"One worker process per tool, every tool at its default settings. {len(rounds)} "
            "interleaved round(s) (parc, mpi4py.futures, local pools, again ...); a figure is the "
            "median over the rounds, a ratio the median of the ratios within each round "
            "(each round's value in the last column).", ""]

    out += ["## Targets", "", "| ratio | value | target | | per round |", "|---|---:|---|---|---|"]
    rows = [
        ("throughput, parc `map` / mpi4py.futures `map`", thr.get(("parc", "map"), {}), thr.get(("mpi4py", "map"), {}), "tasks_per_s", ">=", 10),
        ("throughput, parc `submit` / mpi4py.futures `submit`", thr.get(("parc", "submit"), {}), thr.get(("mpi4py", "submit"), {}), "tasks_per_s", ">=", 10),
        ("throughput, parc `map` / ProcessPoolExecutor `map`", thr.get(("parc", "map"), {}), thr.get(("ppe", "map"), {}), "tasks_per_s", ">=", 2),
        ("throughput, parc `submit` / ProcessPoolExecutor `submit`", thr.get(("parc", "submit"), {}), thr.get(("ppe", "submit"), {}), "tasks_per_s", ">=", 2),
        ("throughput, parc `map` / multiprocessing.Pool `map`", thr.get(("parc", "map"), {}), thr.get(("mp_pool", "map"), {}), "tasks_per_s", None, None),
        ("throughput, parc `submit` / multiprocessing.Pool `apply_async`", thr.get(("parc", "submit"), {}), thr.get(("mp_pool", "submit"), {}), "tasks_per_s", None, None),
        ("latency (median), parc / mpi4py.futures", lat.get("parc", {}), lat.get("mpi4py", {}), "median_us", "<=", 0.1),
        ("latency (p90), parc / mpi4py.futures", lat.get("parc", {}), lat.get("mpi4py", {}), "p90_us", None, None),
        ("latency (median), parc / ProcessPoolExecutor", lat.get("parc", {}), lat.get("ppe", {}), "median_us", None, None),
        ("latency (median), parc / multiprocessing.Pool", lat.get("parc", {}), lat.get("mp_pool", {}), "median_us", None, None),
    ]
    for label, a, b, key, op, target in rows:
        value, each = ratio(a, b, key)
        if value is None:
            out.append(f"| {label} | – | | not measured | |")
            continue
        shown = f"{value:.1f}×" if value >= 1 else f"{value:.3f}×"
        if op is None:
            goal, verdict = "", ""
        else:
            goal = f"{'≥' if op == '>=' else '≤'} {target}×"
            verdict = "ok" if (value >= target if op == ">=" else value <= target) else "**MISSED**"
        each_s = ", ".join(f"{x:.3g}" for x in each)
        out.append(f"| {label} | {shown} | {goal} | {verdict} | {each_s} |")

    out += ["", "## Throughput, no-op tasks (`def noop(x): return x`)", "",
            "N doubles from 1000 until a run takes a quarter of MIN_SECONDS (warm-up); the timed "
            "run has 4 × that N (capped at MAX_TASKS).", "",
            "| tool | mode | tasks/s | N | per round |", "|---|---|---:|---:|---|"]
    for (tool, mode), d in sorted(thr.items(), key=lambda kv: (list(TOOLS).index(kv[0][0]), kv[0][1])):
        each = ", ".join(fmt(d[k]["tasks_per_s"]) for k in sorted(d))
        ns = sorted({d[k]["n"] for k in d})
        out.append(f"| {TOOLS[tool]} | {mode_name(tool, mode)} | {fmt(med(d, 'tasks_per_s'))} | "
                   f"{', '.join(f'{n:,}' for n in ns)} | {each} |")

    out += ["", "## Synchronous latency: submit one no-op, wait for its result", "",
            "| tool | median µs | p90 µs | mean µs | medians per round |", "|---|---:|---:|---:|---|"]
    for tool in TOOLS:
        d = lat.get(tool)
        if not d:
            continue
        each = ", ".join(fmt(d[k]["median_us"]) for k in sorted(d))
        out.append(f"| {TOOLS[tool]} | {fmt(med(d, 'median_us'))} | {fmt(med(d, 'p90_us'))} | "
                   f"{fmt(med(d, 'mean_us'))} | {each} |")

    sizes = sorted({b for (_, _, b) in pay})
    tools = [t for t in TOOLS if any(k[0] == t for k in pay)]
    out += ["", "## numpy payload: one float64 array per call, synchronous, MB/s", "",
            "`echo` returns the array (MB/s counts its bytes twice, there and back); `sum` "
            "returns `arr.sum()` (bytes counted once). Median time per call over "
            "PAYLOAD_SECONDS; MB = 10⁶ bytes.", ""]
    cols = [(t, m) for m in ("echo", "sum") for t in tools]
    ratio_cols = [(m, peer) for m in ("echo", "sum") for peer in tools if peer != "parc" and "parc" in tools]
    out.append("| size | " + " | ".join(f"{PLAIN[t]} {m}" for t, m in cols) + " | "
               + " | ".join(f"{m}: parc / {PLAIN[p]}" for m, p in ratio_cols) + " |")
    out.append("|---:|" + "---:|" * (len(cols) + len(ratio_cols)))
    for b in sizes:
        cells = [fmt(med(pay.get((t, m, b), {}), "mb_per_s")) for t, m in cols]
        for m, p in ratio_cols:
            value, _ = ratio(pay.get(("parc", m, b), {}), pay.get((p, m, b), {}), "mb_per_s")
            cells.append("–" if value is None else f"{value:.2f}×")
        out.append(f"| {size_name(b)} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def plot(path, thr, lat, pay):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(17, 5.2), gridspec_kw={"width_ratios": [3, 1.4, 2]})
    keys = sorted(thr, key=lambda k: (list(TOOLS).index(k[0]), k[1]))
    values = [med(thr[k], "tasks_per_s") for k in keys]
    labels = [f"{PLAIN[t]}\n{'apply_async' if (t, m) == ('mp_pool', 'submit') else m}" for t, m in keys]
    bars = ax1.bar(range(len(keys)), values, color=[COLORS[t] for t, _ in keys])
    ax1.bar_label(bars, labels=[fmt(v) for v in values], fontsize=7)
    ax1.set_xticks(range(len(keys)), labels, fontsize=7, rotation=30, ha="right")
    ax1.set_yscale("log")
    ax1.set_ylabel("no-op tasks / s (log)")
    ax1.set_title("Throughput, 1 worker")

    tools = [t for t in TOOLS if lat.get(t)]
    medians = [med(lat[t], "median_us") for t in tools]
    p90s = [med(lat[t], "p90_us") for t in tools]
    bars = ax2.bar(range(len(tools)), medians, color=[COLORS[t] for t in tools])
    ax2.scatter(range(len(tools)), p90s, marker="_", s=300, color="black", label="p90", zorder=3)
    ax2.bar_label(bars, labels=[fmt(v) for v in medians], fontsize=7)
    ax2.set_xticks(range(len(tools)), [PLAIN[t] for t in tools], fontsize=7, rotation=30, ha="right")
    ax2.set_yscale("log")
    ax2.set_ylabel("µs (log)")
    ax2.set_title("Submit → result latency, median")
    ax2.legend(fontsize=7)

    for tool in TOOLS:
        for mode, style in (("echo", "-"), ("sum", "--")):
            points = sorted((b, med(d, "mb_per_s")) for (t, m, b), d in pay.items() if t == tool and m == mode)
            if points:
                ax3.plot([b for b, _ in points], [v for _, v in points], style, marker="o", ms=3,
                         color=COLORS[tool], label=f"{PLAIN[tool]} {mode}")
    ax3.set_xscale("log", base=2)
    sizes = sorted({b for (_, _, b) in pay})
    ax3.set_xticks(sizes, [size_name(b) for b in sizes], fontsize=8)
    ax3.minorticks_off()
    ax3.set_yscale("log")
    ax3.set_xlabel("float64 array size")
    ax3.set_ylabel("MB/s (log)")
    ax3.set_title("numpy payload, synchronous calls")
    ax3.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("raw")
    p.add_argument("--md", required=True)
    p.add_argument("--png")
    p.add_argument("--meta", action="append", default=[])
    args = p.parse_args()
    versions, thr, lat, pay = load(args.raw)
    text = markdown(args.meta, versions, thr, lat, pay)
    with open(args.md, "w") as f:
        f.write(text)
    if args.png:
        plot(args.png, thr, lat, pay)
    print(text, end="")


if __name__ == "__main__":
    main()
