#!/usr/bin/env bash
# A chain of dependent tasks over a 100 MB array (bench_dataflow.py): parc with results
# kept on the workers, parc with every result through rank 0, and Dask distributed, at 1
# and 2 workers, in interleaved rounds. Writes bench/results/dataflow.md and dataflow.jsonl.
#
#   bash bench/python/dataflow.sh [build_dir=build]
#
# Environment: ROUNDS (default 3), WORKERS (default "1 2"), DATAFLOW_MB (100),
# DATAFLOW_LINKS (8), RESULTS_DIR, PYTHON (default /usr/bin/python3), TIMEOUT (per run, 300).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build_dir=$(cd "${1:-$root/build}" && pwd)
python=${PYTHON:-/usr/bin/python3}
results_dir=${RESULTS_DIR:-$root/bench/results}
limit=${TIMEOUT:-300}

[[ -d $build_dir/python/parc ]] || { echo "dataflow.sh: build first (make build)" >&2; exit 2; }
"$python" -c 'import numpy, distributed' ||
  { echo "dataflow.sh: $python lacks numpy or distributed (make deps-bench)" >&2; exit 2; }
mkdir -p "$results_dir"
# Every large buffer its own mapping, freed at once: RSS then shows what passes through.
export MALLOC_MMAP_THRESHOLD_=1048576
raw=$results_dir/dataflow.jsonl
: >"$raw.tmp"
for ((r = 1; r <= ${ROUNDS:-3}; ++r)); do
  for w in ${WORKERS:-1 2}; do
    for tool in parc-keep parc-through dask; do
      echo "== round $r, $w worker(s): $tool" >&2
      if [[ $tool == dask ]]; then
        BENCH_ROUND=$r timeout "$limit" "$python" "$here/bench_dataflow.py" dask "$w" >>"$raw.tmp"
      else
        BENCH_ROUND=$r PYTHONPATH="$build_dir/python${PYTHONPATH:+:$PYTHONPATH}" \
          timeout "$limit" mpiexec.mpich -n $((w + 1)) "$python" "$here/bench_dataflow.py" \
          "$tool" >>"$raw.tmp"
      fi
    done
  done
done
mv "$raw.tmp" "$raw"
"$python" "$here/bench_dataflow.py" report "$raw" "$results_dir/dataflow.md"
{
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')."
  echo "Command: \`bash bench/python/dataflow.sh\` (ROUNDS=${ROUNDS:-3})."
} >>"$results_dir/dataflow.md"
