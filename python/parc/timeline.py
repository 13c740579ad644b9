"""Draws a PARC_TRACE file: one row per rank, tasks as bars coloured by closure.

    python3 -m parc.timeline trace.json -o trace.png

Gaps between bars are idle time. The summary (tasks and busy fraction per rank) is
printed, and written under the picture. See docs/tracing.md.
"""

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

# Categories drawn as full-height bars coloured by name; the others are thin grey bars.
WORK = ("task", "pipeline", "region")


class TraceError(Exception):
    """The file is missing or is not a trace-event file."""


def load(path):
    """The trace's complete ("X") events and track names: (events, names)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise TraceError(f"{path}: no such file (set PARC_TRACE={path} on a run to make it)")
    except OSError as error:
        raise TraceError(f"{path}: cannot read it: {error.strerror}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise TraceError(f"{path}: not a JSON trace-event file ({error})")
    raw = data.get("traceEvents") if isinstance(data, dict) else data
    if not isinstance(raw, list):
        raise TraceError(f"{path}: not a trace-event file (no traceEvents list)")
    events, names = [], {}
    for event in raw:
        if not isinstance(event, dict):
            continue
        if event.get("ph") == "M" and event.get("name") == "process_name":
            names[event.get("pid")] = event.get("args", {}).get("name", "")
        elif event.get("ph") == "X":
            try:
                events.append({"name": str(event.get("name", "")), "cat": event.get("cat", ""),
                               "rank": int(event["pid"]), "ts": float(event["ts"]),
                               "dur": float(event.get("dur", 0.0)),
                               "args": event.get("args", {})})
            except (KeyError, TypeError, ValueError):
                raise TraceError(f"{path}: an X event lacks pid or ts: {event}")
    for rank in {e["rank"] for e in events}:
        names.setdefault(rank, f"rank {rank}")
    return events, names


def _union_length(intervals):
    total, end = 0.0, None
    for start, stop in sorted(intervals):
        if end is None or start > end:
            total += stop - start
            end = stop
        elif stop > end:
            total += stop - end
            end = stop
    return total


def summarize(events, names):
    """Per rank: tasks, busy time (the union of its events) and busy fraction of the run."""
    # 0 is the end of start-up on rank 0 (another host's clock may put an event before it).
    begin = min([0.0] + [e["ts"] for e in events])
    span = max([begin] + [e["ts"] + e["dur"] for e in events]) - begin
    ranks = {}
    for rank in sorted(names):
        mine = [e for e in events if e["rank"] == rank]
        busy = _union_length([(e["ts"], e["ts"] + e["dur"]) for e in mine])
        ranks[rank] = {"name": names[rank], "events": len(mine),
                       "tasks": sum(1 for e in mine if e["cat"] in ("task", "pipeline")),
                       "busy_us": busy, "busy": busy / span if span > 0 else 0.0}
    closures = Counter(e["name"] for e in events if e["cat"] in ("task", "pipeline"))
    return {"span_us": span, "begin_us": begin, "ranks": ranks, "closures": closures,
            "tasks": sum(closures.values()),
            "regions": sum(1 for e in events if e["cat"] == "region"),
            "proxy_calls": sum(1 for e in events if e["cat"] == "proxy")}


def summary_text(summary):
    lines = [f"{summary['tasks']} tasks on {len(summary['ranks'])} ranks in "
             f"{summary['span_us'] / 1e6:.3f} s"
             + (f", {summary['regions']} region ranks" if summary["regions"] else "")
             + (f", {summary['proxy_calls']} proxy calls" if summary["proxy_calls"] else "")]
    for rank in summary["ranks"].values():
        lines.append(f"  {rank['name']}: {rank['tasks']} tasks, busy {rank['busy']:.1%}")
    return "\n".join(lines)


def draw(events, names, output, title=None):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    summary = summarize(events, names)
    begin = summary["begin_us"]
    ranks = sorted(names)
    row = {rank: i for i, rank in enumerate(ranks)}
    work_names = [name for name, _ in Counter(
        e["name"] for e in events if e["cat"] in WORK).most_common()]
    palette = plt.get_cmap("tab10").colors + plt.get_cmap("Set2").colors
    colour = {name: palette[i % len(palette)] for i, name in enumerate(work_names)}

    height = 1.2 + 0.45 * len(ranks)
    figure, axes = plt.subplots(figsize=(11, height + 0.3 * len(ranks) + 0.6))
    # Idle time is what is left of a row's light background.
    for rank in ranks:
        axes.barh(row[rank], summary["span_us"] / 1e3, left=0, height=0.8, color="#f2f2f2",
                  edgecolor="none")
    by_row = defaultdict(lambda: defaultdict(list))
    for e in events:
        key = (e["name"], e["cat"]) if e["cat"] in WORK else (e["cat"], e["cat"])
        by_row[e["rank"]][key].append(((e["ts"] - begin) / 1e3, max(e["dur"], 0.0) / 1e3))
    # Proxy calls, scheduling and messages are markers: at least a pixel wide, or a short
    # one would vanish in a long run (tasks keep their true width: idle time stays right).
    pixel = summary["span_us"] / 1e3 / 1000
    for rank, groups in by_row.items():
        for (name, cat), spans in groups.items():
            y = row[rank]
            if cat not in WORK:
                spans = [(start, max(width, pixel)) for start, width in spans]
            if cat in WORK:
                axes.broken_barh(spans, (y - 0.38, 0.76), facecolors=colour[name],
                                 edgecolor="none", hatch="//" if cat == "region" else None)
            elif cat == "proxy":
                axes.broken_barh(spans, (y - 0.38, 0.3), facecolors="#111111",
                                 edgecolor="none")
            else:  # the manager's scheduling, large messages
                axes.broken_barh(spans, (y + 0.1, 0.28), facecolors="#555555",
                                 edgecolor="none")
    axes.set_yticks(range(len(ranks)))
    axes.set_yticklabels([f"{names[r]}\nbusy {summary['ranks'][r]['busy']:.0%}" for r in ranks],
                         fontsize=8)
    axes.invert_yaxis()
    axes.set_xlim(0, max(summary["span_us"] / 1e3 * 1.01, 1e-3))  # room for the last marker
    axes.set_xlabel("time since start-up (ms)")
    handles = [Patch(facecolor=colour[n], label=n) for n in work_names[:10]]
    cats = {e["cat"] for e in events}
    if "proxy" in cats:
        handles.append(Patch(facecolor="#111111", label="proxy call"))
    if cats & {"schedule", "message"}:
        handles.append(Patch(facecolor="#555555", label="scheduling, messages"))
    if handles:
        axes.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
                    frameon=False)
    head = summary_text(summary).splitlines()[0]
    axes.set_title(f"{title}\n{head}" if title else head, fontsize=10)
    figure.tight_layout()
    figure.savefig(output, dpi=110)
    plt.close(figure)
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python3 -m parc.timeline",
        description="Draw a PARC_TRACE file: one row per rank, tasks coloured by closure.")
    parser.add_argument("trace", help="the JSON file a run with PARC_TRACE=file wrote")
    parser.add_argument("-o", "--output", help="the picture (PNG, SVG, PDF; default: "
                        "the trace's name with .png)")
    parser.add_argument("--title", help="a title above the picture")
    options = parser.parse_args(argv)
    output = options.output or str(Path(options.trace).with_suffix(".png"))
    try:
        events, names = load(options.trace)
    except TraceError as error:
        print(f"parc.timeline: {error}", file=sys.stderr)
        return 2
    summary = draw(events, names, output, options.title)
    print(summary_text(summary))
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
