#!/usr/bin/env bash
# The soak: 10^6 tasks through the Python task farm and 10^5 proxy calls, the RSS of
# every rank sampled throughout, every outcome checked to arrive exactly once (soak.py).
#
#   bash bench/soak.sh [build_dir=build] [soak.py options...]
#   bash bench/soak.sh build --tasks 20000 --proxy-calls 2000     # a quick run, seconds
#
# Writes bench/results/soak.json, soak.md and soak.png (RESULTS=path.json to move them);
# exits with soak.py's status: 1 when an outcome was lost, duplicated or wrong, an object
# leaked, or RSS grew faster than its limit. Not part of `make bench` (it takes a minute
# or two and measures memory, not speed). Environment: RANKS (default 3: a manager and
# two workers), PYTHON (default /usr/bin/python3), TIMEOUT (seconds, default 1800).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
build_dir=$(cd "${1:-$root/build}" && pwd)
shift || true
python=${PYTHON:-/usr/bin/python3}  # Debian's: sees numpy and matplotlib
ranks=${RANKS:-3}
results=${RESULTS:-$here/results/soak.json}
mpiexec=mpiexec.mpich  # never `mpiexec`: it may be Open MPI's

[[ -d $build_dir/python/parc ]] || {
  echo "soak.sh: $build_dir/python/parc is missing; build first (make build)" >&2; exit 2; }
command -v "$mpiexec" >/dev/null || { echo "soak.sh: $mpiexec not found (apt-get install mpich)" >&2; exit 2; }

export OPENBLAS_NUM_THREADS=1
export PYTHONPATH="$build_dir/python${PYTHONPATH:+:$PYTHONPATH}"
exec timeout "${TIMEOUT:-1800}" "$mpiexec" -n "$ranks" "$python" "$here/soak.py" \
  --out "$results" "$@"
