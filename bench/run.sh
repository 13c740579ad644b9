#!/usr/bin/env bash
# Runs parc's C++ benchmarks in one go on 2 ranks (one manager, one worker) and prints
# a table against the design targets; also writes it to bench/results/latest.txt.
#
#   bash bench/run.sh [build_dir=build]       (`make bench` builds first, then runs this)
#
# Environment: RAW_ARGS (raw_pingpong's: bytes iterations trials warmup), FARM_ARGS
# (farm_bench's name=value settings), IDLE_WINDOW (seconds), RESULTS (output file).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build_dir=$(cd "${1:-build}" && pwd)
bin="$build_dir/bench"
results=${RESULTS:-$here/results/latest.txt}
mpiexec=mpiexec.mpich
ranks=2

for program in raw_pingpong farm_bench idle_worker; do
  if [[ ! -x $bin/$program ]]; then
    echo "run.sh: $bin/$program is missing; build first (make bench, or" \
         "cmake --build $build_dir)" >&2
    exit 2
  fi
done
command -v "$mpiexec" >/dev/null || { echo "run.sh: $mpiexec not found (apt-get install mpich)" >&2; exit 2; }

mkdir -p "$(dirname "$results")"

declare -A v
collect() {  # reads "name value" lines; a name seen again keeps its first value
  local name value
  while read -r name value _; do
    [[ -n $name && -z ${v[$name]+x} ]] && v[$name]=$value
  done
}
step() { echo "== $*" >&2; }

# The raw reference runs before and after the farm; the faster of the two is used
# (the stricter choice for the ratio on a noisy machine).
step "raw MPI ping-pong (1/2)"
raw1=$(timeout 120 "$mpiexec" -n $ranks "$bin/raw_pingpong" ${RAW_ARGS:-})
step "parc task farm"
farm=$(timeout 600 "$mpiexec" -n $ranks "$bin/farm_bench" ${FARM_ARGS:-})
step "raw MPI ping-pong (2/2)"
raw2=$(timeout 120 "$mpiexec" -n $ranks "$bin/raw_pingpong" ${RAW_ARGS:-})
step "idle worker CPU (${IDLE_WINDOW:-5} s)"
idle=$(bash "$here/idle_cpu.sh" "$build_dir" "${IDLE_WINDOW:-5}")

collect <<<"$farm"
collect <<<"$idle"
raw_a=$(awk '$1 == "raw_round_trip_us" { print $2 }' <<<"$raw1")
raw_b=$(awk '$1 == "raw_round_trip_us" { print $2 }' <<<"$raw2")
v[raw_message_bytes]=$(awk '$1 == "raw_message_bytes" { print $2 }' <<<"$raw1")

table=$(awk -v raw_a="$raw_a" -v raw_b="$raw_b" -v bytes="${v[raw_message_bytes]}" \
            -v rtt="${v[farm_round_trip_us]}" -v rtt_min="${v[farm_round_trip_us_min]}" \
            -v map="${v[farm_map_tasks_per_s]}" -v map_n="${v[farm_map_tasks]}" \
            -v win="${v[farm_window_tasks_per_s]}" -v win_n="${v[farm_window]}" \
            -v idle="${v[idle_worker_cpu_percent]}" -v idle_ns="${v[idle_worker_cpu_percent_ns]}" '
  function verdict(ok) { return ok ? "ok" : "MISSED" }
  BEGIN {
    raw = raw_a < raw_b ? raw_a : raw_b
    ratio = rtt / raw
    fmt = "%-44s %14s   %s\n"
    printf fmt, "figure", "value", "target"
    printf fmt, "raw MPI round trip (" bytes " B), us", sprintf("%.2f", raw), sprintf("(runs: %.2f, %.2f)", raw_a, raw_b)
    printf fmt, "parc submit().get() round trip, us", sprintf("%.2f", rtt), sprintf("(best trial %.2f)", rtt_min)
    printf fmt, "ratio parc / raw", sprintf("%.1fx", ratio), "<= 4x  " verdict(ratio <= 4)
    printf fmt, "farm.map(noop, " map_n " ints), tasks/s", sprintf("%.0f", map), ""
    printf fmt, "  tasks per raw round trip", sprintf("%.2f", map * raw / 1e6), ""
    printf fmt, "submit+get, window " win_n ", tasks/s", sprintf("%.0f", win), ""
    printf fmt, "  tasks per raw round trip", sprintf("%.2f", win * raw / 1e6), ""
    printf fmt, "idle worker CPU, % of a core", sprintf("%.2f", idle), "< 2%  " verdict(idle < 2) sprintf("  (schedstat: %.2f)", idle_ns)
  }')

{
  echo "# parc bench, $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(hostname), $(nproc) cores," \
       "MPICH $(pkg-config --modversion mpich 2>/dev/null || echo '?'), $ranks ranks (1 manager, 1 worker)"
  echo "# commit $(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$here" diff --quiet HEAD -- 2>/dev/null || echo ' (with local changes)'), build $build_dir"
  echo "$table"
  echo
  echo "# raw output"
  echo "$raw1" | sed 's/^/run1 /'
  echo "$raw2" | sed 's/^/run2 /'
  echo "$farm"
  echo "$idle"
} >"$results.tmp"
mv "$results.tmp" "$results"
echo "$table"
echo "(written to $results)"
