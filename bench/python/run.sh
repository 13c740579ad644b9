#!/usr/bin/env bash
# Runs the Python benchmarks: parc's TaskFarm against multiprocessing.Pool,
# ProcessPoolExecutor, mpi4py.futures and Dask distributed, with 1 and 3 worker processes
# each, in interleaved rounds: no-op throughput, synchronous latency, efficiency of
# compute-bound tasks of 10 us .. 10 ms, and (1 worker) numpy payloads. Writes
# bench/results/python.md (tables, ratios), python.png (plots) and python.jsonl (raw lines).
# Then the pipeline comparison (pipeline.md), the remote read bandwidth of proxies against
# raw C MPI and mpi4py (bandwidth.md, bandwidth.png, bandwidth.jsonl) and the progress
# engine's figures (engine.sh: engine.md).
#
#   bash bench/python/run.sh [build_dir=build]     (`make bench` runs this after run.sh)
#   PIPELINE=0 BANDWIDTH=0 ENGINE=0 bash bench/python/run.sh build    (the report alone)
#
# Environment: ROUNDS (default 3), WORKERS (default "1 3"), PARTS (default
# throughput,latency,efficiency,payload; payload runs at 1 worker only; "pipeline" or
# "bandwidth" for that comparison only), PIPELINE=0, BANDWIDTH=0 and ENGINE=0 (skip them),
# TIMEOUT (seconds per sub-run, default 300), RESULTS_DIR, PYTHON (default /usr/bin/python3),
# and the measuring settings read by common.py (BENCH_SCALE scales them all, e.g. 0.05 for a
# smoke run; MIN_SECONDS, MAX_TASKS, LATENCY_ITERS, LATENCY_MAX_SECONDS, EFFICIENCY_SECONDS,
# EFFICIENCY_CAP, TASK_US, PAYLOAD_SECONDS, PAYLOAD_MAX), and by bench_bandwidth.py
# (BANDWIDTH_SECONDS, BANDWIDTH_MAX, LATENCY_SECONDS).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build_dir=$(cd "${1:-$root/build}" && pwd)
python=${PYTHON:-/usr/bin/python3}  # Debian's: sees python3-mpi4py, numpy, matplotlib
rounds=${ROUNDS:-3}
parts=${PARTS:-throughput,latency,efficiency,payload}
workers_list=${WORKERS:-1 3}
limit=${TIMEOUT:-300}
results_dir=${RESULTS_DIR:-$root/bench/results}

fail() { echo "python/run.sh: $*" >&2; exit 2; }
[[ -d $build_dir/python/parc ]] || fail "$build_dir/python/parc is missing; build first (make build)"
command -v mpiexec.mpich >/dev/null || fail "mpiexec.mpich not found (apt-get install mpich)"
command -v mpiexec.openmpi >/dev/null || fail "mpiexec.openmpi not found (make deps-bench)"
"$python" -c 'import numpy, mpi4py, matplotlib, distributed' ||
  fail "$python lacks numpy, mpi4py, matplotlib or distributed (make deps-bench)"
mkdir -p "$results_dir"

# parc is built on MPICH; Debian's mpi4py on Open MPI, which refuses root unless told.
mpi4py_launch=(mpiexec.openmpi --oversubscribe)
[[ $(id -u) -ne 0 ]] || mpi4py_launch+=(--allow-run-as-root)

step() { echo "== $*" >&2; }
source "$here/../busy.sh"  # busy_percent

. /etc/os-release
meta1="$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)), $PRETTY_NAME, Linux $(uname -r)"

# PARTS=pipeline or PARTS=bandwidth runs only that comparison (at the end).
if [[ $parts != pipeline && $parts != bandwidth ]]; then
raw=$results_dir/python.jsonl
busy_before=$(busy_percent)
: >"$raw.tmp"
for ((r = 1; r <= rounds; ++r)); do
  for w in $workers_list; do
    # numpy payloads at 1 worker only (they are synchronous calls: more workers idle).
    p=$parts
    ((w == 1)) || p=$(tr , '\n' <<<"$parts" | { grep -vx payload || true; } | paste -sd, -)
    [[ -n $p ]] || continue
    step "round $r/$rounds, $w worker(s): parc"
    BENCH_ROUND=$r PYTHONPATH="$build_dir/python${PYTHONPATH:+:$PYTHONPATH}" \
      timeout "$limit" mpiexec.mpich -n $((w + 1)) "$python" "$here/bench_parc.py" "$p" >>"$raw.tmp"
    step "round $r/$rounds, $w worker(s): mpi4py.futures"
    BENCH_ROUND=$r timeout "$limit" "${mpi4py_launch[@]}" -n $((w + 1)) \
      "$python" -m mpi4py.futures "$here/bench_mpi4py.py" "$p" >>"$raw.tmp"
    step "round $r/$rounds, $w worker(s): ProcessPoolExecutor, multiprocessing.Pool"
    BENCH_ROUND=$r timeout "$limit" "$python" "$here/bench_local.py" "$p" "$w" >>"$raw.tmp"
    step "round $r/$rounds, $w worker(s): Dask distributed"
    BENCH_ROUND=$r timeout "$limit" "$python" "$here/bench_dask.py" "$p" "$w" >>"$raw.tmp"
  done
done
busy_after=$(busy_percent)
mv "$raw.tmp" "$raw"
meta2="MPICH $(mpichversion 2>/dev/null | sed -n 's/^MPICH Version:[[:space:]]*//p') for parc (commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'), build $build_dir); $(mpiexec.openmpi --version | head -1) for mpi4py; Dask distributed $("$python" -c 'import distributed; print(distributed.__version__)'); machine busy ${busy_before}% before, ${busy_after}% after (others' load)"

# The command and every measuring setting that differs from its default (a smoke run shows).
settings=$(for v in BENCH_SCALE MIN_SECONDS MAX_TASKS LATENCY_ITERS LATENCY_MAX_SECONDS EFFICIENCY_SECONDS \
                    EFFICIENCY_CAP TASK_US PAYLOAD_SECONDS PAYLOAD_MAX; do
             [[ -z ${!v:-} ]] || printf '%s=%s ' "$v" "${!v}"; done)
meta3="made by: ROUNDS=$rounds WORKERS='$workers_list' PARTS=$parts ${settings}bash bench/python/run.sh"
"$python" "$here/report.py" "$raw" --md "$results_dir/python.md" --png "$results_dir/python.png" \
  --meta "$meta1" --meta "$meta2" --meta "$meta3"
if ((busy_before > 10 || busy_after > 10)); then
  echo "note: other processes kept the CPUs ${busy_before}% busy before the run and" \
       "${busy_after}% after: these figures are noisy; rerun on a quiet machine"
fi
echo "(written to $results_dir/python.md, python.png, python.jsonl)"
fi

# --- Pipeline: parc.Pipeline against a chain of ProcessPoolExecutors, same stages and
# worker counts (1 + 2 + 1), interleaved rounds. PIPELINE=0 skips it.
if [[ $parts != bandwidth && ${PIPELINE:-1} != 0 ]]; then
  pipeline_raw=$results_dir/pipeline.jsonl
  : >"$pipeline_raw.tmp"
  for ((r = 1; r <= rounds; ++r)); do
    step "pipeline round $r/$rounds: parc (mpiexec.mpich -n 5), executors"
    BENCH_ROUND=$r PYTHONPATH="$build_dir/python${PYTHONPATH:+:$PYTHONPATH}" \
      timeout "$limit" mpiexec.mpich -n 5 "$python" "$here/bench_pipeline.py" parc >>"$pipeline_raw.tmp"
    BENCH_ROUND=$r timeout "$limit" "$python" "$here/bench_pipeline.py" executors >>"$pipeline_raw.tmp"
  done
  mv "$pipeline_raw.tmp" "$pipeline_raw"
  "$python" - "$pipeline_raw" "$results_dir/pipeline.md" "$meta1" <<'PY'
import json, statistics, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
rate = {t: statistics.median(l["items_per_s"] for l in lines if l["tool"] == t)
        for t in ("parc", "executors")}
rounds = {t: [round(l["items_per_s"]) for l in lines if l["tool"] == t] for t in rate}
text = f"""# Pipeline throughput: small items through three stages

{sys.argv[3]}

Stages add_one (1 worker) -> double (2 workers) -> minus_one (1 worker) over range(n), output
checked. parc: `parc.Pipeline([add_one, parc.Stage(double, workers=2), minus_one])` under
`mpiexec.mpich -n 5`; peer: the same functions through a chain of
`ProcessPoolExecutor(1)`, `(2)`, `(1)` with `map` (defaults). Median of {len(rounds['parc'])} interleaved rounds.

| tool | items/s (median) | rounds |
|---|---:|---|
| parc.Pipeline | {rate['parc']:,.0f} | {rounds['parc']} |
| chain of ProcessPoolExecutors | {rate['executors']:,.0f} | {rounds['executors']} |

**parc / executors: {rate['parc'] / rate['executors']:.1f}x**
"""
open(sys.argv[2], "w").write(text)
print(text)
PY
fi

# --- Remote read bandwidth (PyGAS Figure 1): parc proxy reads against raw C MPI and
# mpi4py's pickle and buffer paths, 1 B to 64 MiB, and proxy call latency; interleaved
# rounds raw C, parc, mpi4py. BANDWIDTH=0 skips it.
if [[ $parts == bandwidth || ($parts != pipeline && ${BANDWIDTH:-1} != 0) ]]; then
  raw_bandwidth=$build_dir/bench/raw_bandwidth
  [[ -x $raw_bandwidth ]] || fail "$raw_bandwidth is missing; build first (make build)"
  bandwidth_raw=$results_dir/bandwidth.jsonl
  raw_ms=$(awk -v s="${BANDWIDTH_SECONDS:-0.2}" 'BEGIN { print int(s * 1000) }')
  # raw_bandwidth prints "name value" lines like the other raw C programs; as JSON lines:
  # raw_read_<N>_us and raw_read_<N>_reads make a read figure, the median round trip
  # (raw_round_trip_p50_us) the latency, as bench_bandwidth.py measures it.
  raw_to_json='
    $1 ~ /^raw_read_[0-9]+_us$/ { split($1, f, "_"); us = $2 }
    $1 ~ /^raw_read_[0-9]+_reads$/ {
      printf "{\"series\": \"raw C MPI\", \"bytes\": %s, \"seconds\": %.9g, \"reads\": %s, \"round\": %d}\n", f[3], us / 1e6, $2, r }
    $1 == "raw_round_trip_p50_us" { printf "{\"series\": \"raw C MPI\", \"latency_us\": %s, \"round\": %d}\n", $2, r }'
  busy_before=$(busy_percent)
  : >"$bandwidth_raw.tmp"
  for ((r = 1; r <= rounds; ++r)); do
    step "bandwidth round $r/$rounds: raw C MPI"
    timeout "$limit" mpiexec.mpich -n 2 "$raw_bandwidth" "${BANDWIDTH_MAX:-67108864}" "$raw_ms" |
      awk -v r="$r" "$raw_to_json" >>"$bandwidth_raw.tmp"
    step "bandwidth round $r/$rounds: parc proxy"
    BENCH_ROUND=$r PYTHONPATH="$build_dir/python${PYTHONPATH:+:$PYTHONPATH}" \
      timeout "$limit" mpiexec.mpich -n 2 "$python" "$here/bench_bandwidth.py" parc >>"$bandwidth_raw.tmp"
    step "bandwidth round $r/$rounds: mpi4py pickle, buffer"
    BENCH_ROUND=$r timeout "$limit" "${mpi4py_launch[@]}" -n 2 "$python" "$here/bench_bandwidth.py" mpi4py \
      >>"$bandwidth_raw.tmp"
  done
  busy_after=$(busy_percent)
  mv "$bandwidth_raw.tmp" "$bandwidth_raw"
  meta_bandwidth="MPICH $(mpichversion 2>/dev/null | sed -n 's/^MPICH Version:[[:space:]]*//p') for parc and raw C (commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'), build $build_dir); $(mpiexec.openmpi --version | head -1), mpi4py $("$python" -c 'import mpi4py; print(mpi4py.__version__)'), numpy $("$python" -c 'import numpy; print(numpy.__version__)'), Python $("$python" -c 'import platform; print(platform.python_version())'); machine busy ${busy_before}% before, ${busy_after}% after (others' load)"
  "$python" "$here/report_bandwidth.py" "$bandwidth_raw" --md "$results_dir/bandwidth.md" \
    --png "$results_dir/bandwidth.png" --meta "$meta1" --meta "$meta_bandwidth"
  if ((busy_before > 10 || busy_after > 10)); then
    echo "note: other processes kept the CPUs ${busy_before}% busy before the run and" \
         "${busy_after}% after: these figures are noisy; rerun on a quiet machine"
  fi
  echo "(written to $results_dir/bandwidth.md, bandwidth.png, bandwidth.jsonl)"
fi

# The progress engine's figures (the 16 MiB echo against raw C MPI, sync latency, idle
# CPU): engine.md. ENGINE=0 skips.
if [[ ${ENGINE:-1} != 0 && $parts != pipeline && $parts != bandwidth ]]; then
  bash "$here/engine.sh" "$build_dir"
fi
