#!/usr/bin/env bash
# CPU use of an idle parc worker: runs idle_worker under mpiexec.mpich -n 2 (rank 0
# sleeps in Runtime::run, submitting nothing) and samples the worker's utime+stime
# from /proc/<pid>/stat over a window. Prints "name value" lines:
#   idle_worker_cpu_percent     worker's utime+stime over the window, % of one core
#   idle_worker_cpu_percent_ns  the same from /proc/<pid>/task/*/schedstat (ns
#                               resolution; a cross-check of the tick-based figure)
#   idle_manager_cpu_percent    rank 0 (sleeping in the user's main), for reference
#
#   bench/idle_cpu.sh <build_dir> [window_seconds=5]
set -euo pipefail

build_dir=${1:?usage: idle_cpu.sh <build_dir> [window_seconds]}
window=${2:-5}
settle=1
program="$build_dir/bench/idle_worker"
[[ -x $program ]] || { echo "idle_cpu.sh: $program not built" >&2; exit 2; }

out=$(mktemp)
trap 'rm -f "$out"' EXIT
run_for=$((settle + window + 2))
timeout $((run_for + 30)) mpiexec.mpich -n 2 "$program" "$run_for" >"$out" &
job=$!

# The pids each rank printed at start-up.
worker="" manager=""
for _ in $(seq 100); do
  worker=$(awk '$1 == "idle_worker_pid" && $2 == 1 { print $3 }' "$out")
  manager=$(awk '$1 == "idle_worker_pid" && $2 == 0 { print $3 }' "$out")
  [[ -n $worker && -n $manager ]] && break
  sleep 0.1
done
if [[ -z $worker || -z $manager ]]; then
  echo "idle_cpu.sh: idle_worker did not report its pids" >&2
  cat "$out" >&2
  exit 1
fi

ticks() {  # utime + stime of a process, in clock ticks (fields 14, 15; comm may hold spaces)
  local stat
  stat=$(<"/proc/$1/stat")
  stat=${stat##*) }
  awk '{ print $12 + $13 }' <<<"$stat"
}
run_ns() {  # time on a CPU of all of a process's threads, ns
  cat /proc/"$1"/task/*/schedstat | awk '{ s += $1 } END { printf "%.0f\n", s }'
}
now_ns() { date +%s%N; }

sleep "$settle"
w_ticks0=$(ticks "$worker"); m_ticks0=$(ticks "$manager"); w_ns0=$(run_ns "$worker"); t0=$(now_ns)
sleep "$window"
w_ticks1=$(ticks "$worker"); m_ticks1=$(ticks "$manager"); w_ns1=$(run_ns "$worker"); t1=$(now_ns)

wait "$job" || { echo "idle_cpu.sh: idle_worker failed" >&2; cat "$out" >&2; exit 1; }

hz=$(getconf CLK_TCK)
awk -v wt=$((w_ticks1 - w_ticks0)) -v mt=$((m_ticks1 - m_ticks0)) -v wns=$((w_ns1 - w_ns0)) \
    -v dt=$((t1 - t0)) -v hz="$hz" 'BEGIN {
  secs = dt / 1e9
  printf "idle_window_s %.2f\n", secs
  printf "idle_worker_cpu_percent %.2f\n", 100 * wt / hz / secs
  printf "idle_worker_cpu_percent_ns %.2f\n", 100 * wns / 1e9 / secs
  printf "idle_manager_cpu_percent %.2f\n", 100 * mt / hz / secs
}'
