"""Collects the JSON lines of the Python benchmarks (all rounds, all worker counts) and
writes a Markdown report and a plot:

    python3 report.py raw.jsonl --md python.md --png python.png [--meta "line" ...]

Each figure is the median over the rounds; each ratio is computed within a round (parc
against the peers measured next to it in that round) and the median of those is shown
with every round's value. Lines without a "workers" field (older runs) count as 1 worker.
"""

import argparse
import json
import statistics
from collections import defaultdict

TOOLS = {
    "parc": "parc `TaskFarm`",
    "mp_pool": "`multiprocessing.Pool`",
    "ppe": "`ProcessPoolExecutor`",
    "mpi4py": "mpi4py.futures `MPIPoolExecutor`",
    "dask": "Dask distributed `Client`",
}
PLAIN = {"parc": "parc", "mpi4py": "mpi4py.futures", "ppe": "ProcessPoolExecutor",
         "mp_pool": "multiprocessing.Pool", "dask": "Dask"}
COLORS = {"parc": "tab:red", "mpi4py": "tab:blue", "ppe": "tab:green", "mp_pool": "tab:gray",
          "dask": "tab:purple"}
PEERS = [t for t in TOOLS if t != "parc"]


def mode_name(tool, mode):
    if mode == "submit_batch":
        return "`submit_batch`, then `result` all"
    if mode == "submit":
        return "`apply_async` all, then `get` all" if tool == "mp_pool" else "`submit` all, then `result` all"
    if tool == "dask":
        return "`gather(map)` (no chunksize)"
    if tool == "parc":
        return "`map` (automatic chunks)"
    return "`map` (default chunksize)"


class Data:
    """Every figure by what it measures, then by round."""

    def __init__(self, lines):
        self.versions = {}
        self.thr = defaultdict(dict)  # (tool, mode, workers) -> round -> line
        self.lat = defaultdict(dict)  # (tool, workers)
        self.eff = defaultdict(dict)  # (tool, workers, task_us)
        self.pay = defaultdict(dict)  # (tool, mode, bytes), 1 worker
        for r in lines:
            tool, bench, rnd, w = r["tool"], r["bench"], r["round"], r.get("workers", 1)
            if bench == "versions":
                self.versions.setdefault(tool, r)
            elif bench == "throughput":
                self.thr[(tool, r["mode"], w)][rnd] = r
            elif bench == "latency":
                self.lat[(tool, w)][rnd] = r
            elif bench == "efficiency":
                self.eff[(tool, w, r["task_us"])][rnd] = r
            elif bench == "payload" and w == 1:
                self.pay[(tool, r["mode"], r["bytes"])][rnd] = r
        self.rounds = sorted({k for d in (*self.thr.values(), *self.lat.values(),
                                          *self.eff.values(), *self.pay.values()) for k in d})
        self.workers = sorted({k[-1] for k in (*self.thr, *self.lat)} | {k[1] for k in self.eff})


def load(path):
    with open(path) as f:
        return Data(json.loads(line) for line in f if line.startswith("{"))


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


def times(x):
    if x is None:
        return "–"
    return f"{x:,.0f}×" if x >= 100 else f"{x:.1f}×" if x >= 1 else f"{x:.3f}×"


def with_rounds(by_round, key):
    """The median, then each round's value."""
    if not by_round:
        return "–"
    return f"{fmt(med(by_round, key))} ({', '.join(fmt(by_round[k][key]) for k in sorted(by_round))})"


def ratio_cell(a, b, key):
    value, each = ratio(a, b, key)
    if value is None:
        return "–"
    return f"{times(value)} ({', '.join(fmt(x) for x in each)})"


def size_name(b):
    return f"{b >> 20} MiB" if b >= 1 << 20 else f"{b >> 10} KiB"


def task_name(us):
    return f"{us} µs" if us < 1000 else f"{us // 1000} ms"


def targets(d):
    """(label, parc's figures, the peer's, key, op, target): on 1 worker; op None = shown
    for information. From issue 14 and the design."""
    def getter(table):
        return lambda *key: table.get(key, {})
    t, lat, e = getter(d.thr), getter(d.lat), getter(d.eff)
    return [
        ("throughput, parc `map` / multiprocessing.Pool `map`", t("parc", "map", 1), t("mp_pool", "map", 1), "tasks_per_s", ">=", 1),
        ("efficiency, 10 µs tasks, parc / multiprocessing.Pool", e("parc", 1, 10), e("mp_pool", 1, 10), "efficiency", ">=", 0.9),
        ("throughput, parc `map` / mpi4py.futures `map`", t("parc", "map", 1), t("mpi4py", "map", 1), "tasks_per_s", ">=", 10),
        ("throughput, parc `submit` / mpi4py.futures `submit`", t("parc", "submit", 1), t("mpi4py", "submit", 1), "tasks_per_s", ">=", 10),
        ("throughput, parc `map` / Dask `map`", t("parc", "map", 1), t("dask", "map", 1), "tasks_per_s", ">=", 100),
        ("throughput, parc `submit` / Dask `submit`", t("parc", "submit", 1), t("dask", "submit", 1), "tasks_per_s", ">=", 100),
        ("latency (median), parc / mpi4py.futures", lat("parc", 1), lat("mpi4py", 1), "median_us", "<=", 0.1),
        ("throughput, parc `map` / ProcessPoolExecutor `map`", t("parc", "map", 1), t("ppe", "map", 1), "tasks_per_s", ">=", 2),
        ("throughput, parc `submit` / ProcessPoolExecutor `submit`", t("parc", "submit", 1), t("ppe", "submit", 1), "tasks_per_s", ">=", 2),
        ("throughput, parc `submit` / multiprocessing.Pool `apply_async`", t("parc", "submit", 1), t("mp_pool", "submit", 1), "tasks_per_s", None, None),
        ("latency (median), parc / multiprocessing.Pool", lat("parc", 1), lat("mp_pool", 1), "median_us", None, None),
        ("latency (median), parc / Dask", lat("parc", 1), lat("dask", 1), "median_us", None, None),
    ]


def verdicts(d):
    """(label, median ratio, per-round ratios, goal text, verdict) for each target row."""
    out = []
    for label, a, b, key, op, target in targets(d):
        value, each = ratio(a, b, key)
        if op is None:
            goal, verdict = "", ""
        else:
            goal = f"{'≥' if op == '>=' else '≤'} {target}×"
            if value is None:
                verdict = "not measured"
            else:
                verdict = "ok" if (value >= target if op == ">=" else value <= target) else "**MISSED**"
        out.append((label, value, each, goal, verdict))
    return out


def markdown(meta, d):
    out = ["# parc Python task farm against its peers", ""]
    out += [f"{m}  " for m in meta]
    v = d.versions
    if v.get("parc", {}).get("version") == "?":  # no parc.__version__
        v["parc"]["version"] = "(no __version__)"
    base = v.get("parc", v.get("ppe", {}))
    out.append("Python {}, numpy {}; parc {}; mpi4py {} ({}); Dask distributed {}; "
               "ProcessPoolExecutor / multiprocessing start method: {}.".format(
                   base.get("python", "?"), base.get("numpy", "?"),
                   v.get("parc", {}).get("version", "?"),
                   v.get("mpi4py", {}).get("version", "?"), v.get("mpi4py", {}).get("mpi", "?"),
                   v.get("dask", {}).get("version", "?"), v.get("ppe", {}).get("start_method", "?")))
    ws = ", ".join(map(str, d.workers))
    out += ["", f"Every tool at its default settings with W worker processes (W = {ws}). "
            f"{len(d.rounds)} interleaved round(s): in each, for each W, parc, mpi4py.futures, "
            "ProcessPoolExecutor and multiprocessing.Pool, Dask, one after the other. A figure "
            "is the median over the rounds; a ratio is computed within each round (parc against "
            "the peer measured next to it) and the median of those is shown, with each round's "
            "value in parentheses. parc / peer > 1 means parc is ahead in throughput and "
            "efficiency, behind in latency.", ""]

    out += ["## Targets (1 worker)", "", "| ratio | value | target | | per round |", "|---|---:|---|---|---|"]
    for label, value, each, goal, verdict in verdicts(d):
        each_s = ", ".join(fmt(x) for x in each)
        out.append(f"| {label} | {times(value)} | {goal} | {verdict} | {each_s} |")

    out += ["", "## Throughput, no-op tasks (`def noop(x): return x`), tasks/s", "",
            "N doubles from 100 until a run takes a quarter of MIN_SECONDS (warm-up); the timed "
            "run has 4 × that N (capped at MAX_TASKS). parc / this: parc's figure in the same "
            "mode (`map` against `map`, `submit` against `submit` or `apply_async`).", ""]
    head, rule = "| tool | mode |", "|---|---|"
    for w in d.workers:
        head += f" {w} worker{'s' if w > 1 else ''}: tasks/s (rounds) | N | parc / this |"
        rule += "---:|---:|---|"
    out += [head, rule]
    for (tool, mode) in sorted({(t, m) for t, m, _ in d.thr}, key=lambda k: (list(TOOLS).index(k[0]), k[1])):
        row = f"| {TOOLS[tool]} | {mode_name(tool, mode)} |"
        for w in d.workers:
            cell = d.thr.get((tool, mode, w), {})
            ns = sorted({cell[k]["n"] for k in cell})
            mine = d.thr.get(("parc", mode, w), {})
            row += (f" {with_rounds(cell, 'tasks_per_s')} | {', '.join(f'{n:,}' for n in ns) or '–'} | "
                    f"{ratio_cell(mine, cell, 'tasks_per_s') if tool != 'parc' else ''} |")
        out.append(row)

    out += ["", "## Synchronous latency: `submit(noop, i).result()`, one call at a time, µs", "",
            "LATENCY_ITERS calls (fewer, at least 20, when they take more than "
            "LATENCY_MAX_SECONDS), each timed on its own, after up to 200 warm-up calls. "
            "parc / this < 1: parc answers sooner.", ""]
    head, rule = "| tool |", "|---|"
    for w in d.workers:
        head += f" {w} worker{'s' if w > 1 else ''}: median (rounds) | p90 | mean | parc / this |"
        rule += "---:|---:|---:|---|"
    out += [head, rule]
    for tool in TOOLS:
        if not any(d.lat.get((tool, w)) for w in d.workers):
            continue
        row = f"| {TOOLS[tool]} |"
        for w in d.workers:
            cell = d.lat.get((tool, w), {})
            row += (f" {with_rounds(cell, 'median_us')} | {fmt(med(cell, 'p90_us'))} | "
                    f"{fmt(med(cell, 'mean_us'))} | "
                    f"{ratio_cell(d.lat.get(('parc', w), {}), cell, 'median_us') if tool != 'parc' else ''} |")
        out.append(row)

    if d.eff:
        out += efficiency_tables(d)

    if d.pay:
        out += payload_table(d)
    return "\n".join(out) + "\n"


def efficiency_tables(d):
    out = ["", "## Efficiency: useful time / (workers × elapsed), compute-bound tasks through `map`", "",
           "Each tool maps the same list of tasks (a busy loop on the clock for the task's "
           "length; about EFFICIENCY_SECONDS of work per worker, at least 20 tasks per worker) "
           "and its results are checked; useful time is the sum of the task lengths. A tool whose "
           "run would take more than EFFICIENCY_CAP seconds (reckoned from its no-op `map` rate) "
           "runs the first part of the list (marked †, counts below). Ratios parc / this > 1: "
           "parc keeps its workers busier."]
    tools = [t for t in TOOLS if any(k[0] == t for k in d.eff)]
    peers = [t for t in tools if t != "parc"]
    prefixes = []
    for w in d.workers:
        lengths = sorted({us for t, ww, us in d.eff if ww == w})
        if not lengths:
            continue
        out += ["", f"### {w} worker{'s' if w > 1 else ''}", "",
                "| task | " + " | ".join(PLAIN[t] for t in tools) + " | "
                + " | ".join(f"parc / {PLAIN[p]} (rounds)" for p in peers) + " |",
                "|---:|" + "---:|" * len(tools) + "---|" * len(peers)]
        for us in lengths:
            cells = []
            for t in tools:
                cell = d.eff.get((t, w, us), {})
                cut = [cell[k] for k in sorted(cell) if cell[k]["tasks"] < cell[k]["listed"]]
                if cut:
                    prefixes.append(f"{PLAIN[t]}, {w} worker{'s' if w > 1 else ''}, {task_name(us)}: "
                                    f"{', '.join(format(c['tasks'], ',') for c in cut)} of {cut[0]['listed']:,}")
                cells.append(fmt(med(cell, "efficiency")) + (" †" if cut else ""))
            mine = d.eff.get(("parc", w, us), {})
            cells += [ratio_cell(mine, d.eff.get((p, w, us), {}), "efficiency") for p in peers]
            out.append(f"| {task_name(us)} | " + " | ".join(cells) + " |")
    if prefixes:
        out += ["", "† tasks run, of the list's: " + "; ".join(prefixes) + "."]
    return out


def payload_table(d):
    sizes = sorted({b for (_, _, b) in d.pay})
    tools = [t for t in TOOLS if any(k[0] == t for k in d.pay)]
    out = ["", "## numpy payload (1 worker): one float64 array per call, synchronous, MB/s", "",
           "`echo` returns the array (MB/s counts its bytes twice, there and back); `sum` "
           "returns `arr.sum()` (bytes counted once). Median time per call over "
           "PAYLOAD_SECONDS; MB = 10⁶ bytes.", ""]
    cols = [(t, m) for m in ("echo", "sum") for t in tools]
    ratio_cols = [(m, peer) for m in ("echo", "sum") for peer in tools if peer != "parc" and "parc" in tools]
    out.append("| size | " + " | ".join(f"{PLAIN[t]} {m}" for t, m in cols) + " | "
               + " | ".join(f"{m}: parc / {PLAIN[p]}" for m, p in ratio_cols) + " |")
    out.append("|---:|" + "---:|" * (len(cols) + len(ratio_cols)))
    for b in sizes:
        cells = [fmt(med(d.pay.get((t, m, b), {}), "mb_per_s")) for t, m in cols]
        for m, p in ratio_cols:
            value, _ = ratio(d.pay.get(("parc", m, b), {}), d.pay.get((p, m, b), {}), "mb_per_s")
            cells.append("–" if value is None else f"{value:.2f}×")
        out.append(f"| {size_name(b)} | " + " | ".join(cells) + " |")
    return out


def plot(path, d):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(16, 10))
    (ax1, ax2), (ax3, ax4) = axes
    hatches = {w: h for w, h in zip(d.workers, ("", "//", "..", "xx"))}

    # Throughput: one bar per (tool, mode, workers).
    keys = sorted(d.thr, key=lambda k: (list(TOOLS).index(k[0]), k[1], k[2]))
    values = [med(d.thr[k], "tasks_per_s") for k in keys]
    bars = ax1.bar(range(len(keys)), values, color=[COLORS[t] for t, _, _ in keys],
                   hatch=None, edgecolor="black", linewidth=0.3)
    for bar, (_, _, w) in zip(bars, keys):
        bar.set_hatch(hatches[w])
    ax1.bar_label(bars, labels=[fmt(v) for v in values], fontsize=6, rotation=90, padding=2)
    ax1.set_xticks(range(len(keys)),
                   [f"{PLAIN[t]} {'apply_async' if (t, m) == ('mp_pool', 'submit') else m} W={w}"
                    for t, m, w in keys], fontsize=6, rotation=45, ha="right")
    ax1.set_yscale("log")
    if values:
        ax1.set_ylim(top=max(values) * 10)  # room for the labels
    ax1.set_ylabel("no-op tasks / s (log)")
    ax1.set_title("Throughput (hatched: more workers)")

    # Latency: median per (tool, workers), p90 marked.
    keys = [(t, w) for t in TOOLS for w in d.workers if d.lat.get((t, w))]
    medians = [med(d.lat[k], "median_us") for k in keys]
    bars = ax2.bar(range(len(keys)), medians, color=[COLORS[t] for t, _ in keys],
                   edgecolor="black", linewidth=0.3)
    for bar, (_, w) in zip(bars, keys):
        bar.set_hatch(hatches[w])
    ax2.scatter(range(len(keys)), [med(d.lat[k], "p90_us") for k in keys], marker="_", s=200,
                color="black", label="p90", zorder=3)
    ax2.bar_label(bars, labels=[fmt(v) for v in medians], fontsize=6)
    ax2.set_xticks(range(len(keys)), [f"{PLAIN[t]} W={w}" for t, w in keys], fontsize=6,
                   rotation=45, ha="right")
    ax2.set_yscale("log")
    if medians:
        ax2.set_ylim(top=max(medians + [med(d.lat[k], "p90_us") for k in keys]) * 3)
    ax2.set_ylabel("µs (log)")
    ax2.set_title("submit → result latency, median")
    ax2.legend(fontsize=7)

    # Efficiency against task length.
    styles = {w: s for w, s in zip(d.workers, ("-", "--", ":", "-."))}
    for tool in TOOLS:
        for w in d.workers:
            points = sorted((us, med(c, "efficiency")) for (t, ww, us), c in d.eff.items()
                            if t == tool and ww == w)
            if points:
                ax3.plot([us for us, _ in points], [e for _, e in points], styles[w], marker="o",
                         ms=3, color=COLORS[tool], label=f"{PLAIN[tool]} W={w}")
    lengths = sorted({us for _, _, us in d.eff})
    if lengths:
        ax3.set_xscale("log")
        ax3.set_xticks(lengths, [task_name(us) for us in lengths])
        ax3.minorticks_off()
        ax3.legend(fontsize=6, ncol=2)
    ax3.set_ylim(0, 1.05)
    ax3.set_xlabel("task length")
    ax3.set_ylabel("useful time / (workers × elapsed)")
    ax3.set_title("Efficiency, compute-bound tasks through map")

    for tool in TOOLS:
        for mode, style in (("echo", "-"), ("sum", "--")):
            points = sorted((b, med(c, "mb_per_s")) for (t, m, b), c in d.pay.items() if t == tool and m == mode)
            if points:
                ax4.plot([b for b, _ in points], [v for _, v in points], style, marker="o", ms=3,
                         color=COLORS[tool], label=f"{PLAIN[tool]} {mode}")
    sizes = sorted({b for (_, _, b) in d.pay})
    if sizes:
        ax4.set_xscale("log", base=2)
        ax4.set_xticks(sizes, [size_name(b) for b in sizes], fontsize=8)
        ax4.minorticks_off()
        ax4.set_yscale("log")
        ax4.legend(fontsize=7)
    ax4.set_xlabel("float64 array size")
    ax4.set_ylabel("MB/s (log)")
    ax4.set_title("numpy payload, synchronous calls, 1 worker")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("raw")
    p.add_argument("--md", required=True)
    p.add_argument("--png")
    p.add_argument("--meta", action="append", default=[])
    args = p.parse_args()
    d = load(args.raw)
    text = markdown(args.meta, d)
    with open(args.md, "w") as f:
        f.write(text)
    if args.png:
        plot(args.png, d)
    print(text, end="")


if __name__ == "__main__":
    main()
