#!/usr/bin/env bash
# The progress engine's figures (issue 13), each against a peer measured in the same run,
# in interleaved rounds (this machine's speed drifts):
#   - a 16 MiB numpy echo through a farm task against two raw C MPI reads of 16 MiB;
#   - Python's synchronous round trip, submit(noop).result();
#   - the CPU an idle Python job uses (manager with its engine, and a worker).
# Writes bench/results/engine.md and engine.jsonl. Farm efficiency by task length (against
# multiprocessing.Pool and the other peers, 1 and 3 workers) is in run.sh's python.md.
#
#   bash bench/python/engine.sh [build_dir=build]      (ROUNDS=3)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build_dir=$(cd "${1:-$root/build}" && pwd)
python=${PYTHON:-/usr/bin/python3}
rounds=${ROUNDS:-3}
results_dir=${RESULTS_DIR:-$root/bench/results}
raw="$build_dir/bench/raw_bandwidth"
[[ -x $raw ]] || { echo "engine.sh: $raw is missing; build first (make build)" >&2; exit 2; }
export PYTHONPATH="$build_dir/python${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$results_dir"
lines="$results_dir/engine.jsonl"
: >"$lines"

tag() { "$python" -c 'import json,sys
r=int(sys.argv[1])
for line in sys.stdin:
    line=line.strip()
    if line.startswith("{"):
        o=json.loads(line); o["round"]=r; print(json.dumps(o))' "$1"; }

for round in $(seq "$rounds"); do
  echo "engine.sh: round $round of $rounds" >&2
  # Two raw reads of 16 MiB are the echo's raw reference (there and back).
  timeout 120 mpiexec.mpich -n 2 "$raw" 16777216 300 1000 1 |
    awk -v r="$round" '$1 == "raw_read_16777216_us" { printf "{\"bench\": \"raw_read\", \"bytes\": 16777216, \"us\": %s, \"round\": %d}\n", $2, r }' >>"$lines"
  PAYLOAD_MAX=16777216 timeout 300 mpiexec.mpich -n 2 "$python" "$here/bench_parc.py" payload,latency | tag "$round" >>"$lines"
  timeout 120 mpiexec.mpich -n 2 "$python" "$here/bench_idle.py" 5 | tag "$round" >>"$lines"
done

"$python" - "$lines" "$results_dir/engine.md" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rounds = sorted({r["round"] for r in rows})
out = ["# Progress engine: parc against its peers, measured in the same run", "",
       f"{len(rounds)} interleaved rounds; each ratio is computed within a round, the median "
       "is shown with every round's value. Farm efficiency by task length against "
       "multiprocessing.Pool and the other peers: python.md (bench/python/run.sh)."]
def med(xs): return statistics.median(xs) if xs else float("nan")
out += ["", "## 16 MiB numpy echo (to a task and back) against raw C MPI", ""]
raw = {r["round"]: r["us"] for r in rows if r.get("bench") == "raw_read"}
echo = {r["round"]: r["call_us"] for r in rows if r.get("bench") == "payload" and r.get("mode") == "echo" and r.get("bytes") == 16777216}
shares = [2 * raw[k] / echo[k] for k in echo if k in raw]
out += ["| parc echo | raw: 2 reads | parc's share of raw bandwidth (rounds) |", "|---|---|---|",
        f"| {med(list(echo.values())) / 1e3:.2f} ms | {2 * med(list(raw.values())) / 1e3:.2f} ms | "
        f"{med(shares):.2f} ({', '.join(f'{x:.2f}' for x in shares)}) |"]
lat = [r["median_us"] for r in rows if r.get("bench") == "latency"]
out += ["", "## Python synchronous round trip, submit(noop, x).result()", "",
        f"median {med(lat):.1f} us (rounds: {', '.join(f'{x:.1f}' for x in lat)})"]
idle = [r for r in rows if r.get("bench") == "idle"]
out += ["", "## Idle CPU, % of one core over 5 s (rank 0: the user's main sleeping, its engine idle; rank 1: a worker waiting)", ""]
for rank in (0, 1):
    xs = [r["cpu_percent"] for r in idle if r["rank"] == rank]
    out.append(f"- rank {rank}: median {med(xs):.2f}% (rounds: {', '.join(f'{x:.2f}' for x in xs)})")
open(sys.argv[2], "w").write("\n".join(out) + "\n")
print("\n".join(out))
PY
