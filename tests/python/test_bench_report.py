"""bench/python/report.py on a fixed sample of benchmark lines: ratios are computed within
each round, then their median is shown (never the ratio of the medians), with each round's
value; targets get their verdicts; short efficiency runs are marked. No timing is asserted."""

import importlib.util
import json

from conftest import REPO

spec = importlib.util.spec_from_file_location("bench_report", REPO / "bench" / "python" / "report.py")
report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(report)


def line(tool, bench, rnd, workers=1, **fields):
    return {"tool": tool, "bench": bench, "round": rnd, "workers": workers, **fields}


def sample():
    lines = []
    # parc map 10, 20, 30 k/s against Pool 5, 40, 30: ratios 2, 0.5, 1 -> median 1.0,
    # whereas the ratio of the medians would be 20 / 30.
    for rnd, (mine, pool) in enumerate([(10e3, 5e3), (20e3, 40e3), (30e3, 30e3)], start=1):
        lines.append(line("parc", "throughput", rnd, mode="map", n=1000, seconds=1, tasks_per_s=mine))
        lines.append(line("mp_pool", "throughput", rnd, mode="map", n=1000, seconds=1, tasks_per_s=pool))
        lines.append(line("dask", "throughput", rnd, mode="map", n=100, seconds=1, tasks_per_s=mine / 200))
        lines.append(line("parc", "latency", rnd, n=20, median_us=10, p90_us=12, mean_us=11))
        lines.append(line("mpi4py", "latency", rnd, n=20, median_us=50 * rnd, p90_us=400, mean_us=300))
        lines.append(line("parc", "efficiency", rnd, task_us=10, tasks=3000, listed=3000,
                          seconds=1, efficiency=0.8))
        lines.append(line("mp_pool", "efficiency", rnd, task_us=10, tasks=3000, listed=3000,
                          seconds=1, efficiency=[1.0, 0.8, 0.9][rnd - 1]))
        lines.append(line("dask", "efficiency", rnd, task_us=10, tasks=60, listed=3000,
                          seconds=1, efficiency=0.01))
        lines.append(line("parc", "throughput", rnd, workers=3, mode="map", n=1000, seconds=1,
                          tasks_per_s=9e3))
    lines.append(line("mpi4py", "latency", 4, n=20, median_us=1, p90_us=1, mean_us=1))  # no parc
    old = {"tool": "ppe", "bench": "throughput", "round": 1, "mode": "map", "n": 1000,
           "seconds": 1, "tasks_per_s": 1e3}  # a line of an older run: 1 worker
    lines.append(old)
    return lines


def test_ratios_within_rounds(tmp_path):
    path = tmp_path / "raw.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in sample()) + "not json\n")
    d = report.load(path)
    assert d.workers == [1, 3]
    assert d.rounds == [1, 2, 3, 4]
    rows = {label: (value, each, verdict) for label, value, each, _, verdict in report.verdicts(d)}

    value, each, verdict = rows["throughput, parc `map` / multiprocessing.Pool `map`"]
    assert each == [2.0, 0.5, 1.0] and value == 1.0 and verdict == "ok"
    value, each, verdict = rows["efficiency, 10 µs tasks, parc / multiprocessing.Pool"]
    assert value == 0.8 / 0.9 and verdict == "**MISSED**"  # 0.889 < 0.9
    value, each, verdict = rows["throughput, parc `map` / Dask `map`"]
    assert value == 200 and verdict == "ok"
    value, each, verdict = rows["latency (median), parc / mpi4py.futures"]
    assert each == [10 / 50, 10 / 100, 10 / 150] and verdict == "ok"  # round 4 unpaired; 0.1 <= 0.1
    assert rows["throughput, parc `map` / mpi4py.futures `map`"][2] == "not measured"

    text = report.markdown(["meta line"], d)
    assert "| throughput, parc `map` / multiprocessing.Pool `map` | 1.0× | ≥ 1× | ok | 2, 0.5, 1 |" in text
    assert "20,000 (10,000, 20,000, 30,000)" in text  # a figure: median, then each round
    assert "1.0× (2, 0.5, 1)" in text  # the throughput table's parc / Pool cell
    assert "### 3 workers" not in text  # no efficiency lines at 3 workers
    assert "0.01 †" in text and "Dask, 1 worker, 10 µs: 60, 60, 60 of 3,000" in text
    assert "| `ProcessPoolExecutor` | `map` (default chunksize) | 1,000 (1,000) |" in text


def test_dataflow_ratios_are_taken_within_each_round():
    spec = importlib.util.spec_from_file_location(
        "bench_dataflow", REPO / "bench" / "python" / "bench_dataflow.py")
    dataflow = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dataflow)
    runs = [{"round": 1, "chain_s": 1.0}, {"round": 3, "chain_s": 3.0},
            {"round": 2, "chain_s": 4.0}]
    peers = [{"round": 2, "chain_s": 2.0}, {"round": 1, "chain_s": 4.0}]
    # round 3 has no peer; rounds in order
    assert dataflow.round_ratios(runs, peers) == [0.25, 2.0]
