#!/usr/bin/env bash
# Runs parc's C++ benchmarks in one go on 2 ranks (one manager, one worker), prints a
# table against the design targets and writes it to bench/results/latest.txt.
#
#   bash bench/run.sh [build_dir=build]       (`make bench` builds, then runs this)
#
# The round trips are measured in interleaved rounds, raw farm raw farm ... raw, and each
# farm run is compared with the raw runs on either side of it: the machine's speed
# drifts between runs (see README.md), and a ratio must compare like with like.
#
# Then the SPMD part: ctx.allreduce in a region (C++ and Python) against raw
# MPI_Allreduce at equal region sizes, written to bench/results/spmd.md (PARTS=spmd runs
# only that part).
#
# Environment: ROUNDS (farm round-trip runs, default 3), RAW_ARGS (raw_pingpong's
# "bytes iterations trials warmup"), FARM_ARGS (farm_bench's sizes, e.g. "round_trips=N
# map=N"), IDLE_WINDOW (seconds, default 5), ONE_CORE=0 to skip the run with both ranks
# on one core, RESULTS (output file). SPMD=0 skips the SPMD part; SPMD_SIZES (region
# sizes, default "1 2 3"), SPMD_ROUNDS (default 3), SPMD_ITERATIONS (allreduce calls per
# trial, default 20000), SPMD_OVERSUBSCRIBED_ITERATIONS (when the region has more ranks
# than the machine has cores, default 300), SPMD_RESULTS (output file), PYTHON
# (default /usr/bin/python3), PARTS=spmd.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build_dir=$(cd "${1:-build}" && pwd)
bin="$build_dir/bench"
results=${RESULTS:-$here/results/latest.txt}
rounds=${ROUNDS:-3}
mpiexec=mpiexec.mpich  # never `mpiexec`: it may be Open MPI's
ranks=2

for program in raw_pingpong farm_bench idle_worker raw_allreduce spmd_bench; do
  if [[ ! -x $bin/$program ]]; then
    echo "run.sh: $bin/$program is missing; build first (make bench, or" \
         "cmake --build $build_dir)" >&2
    exit 2
  fi
done
command -v "$mpiexec" >/dev/null || { echo "run.sh: $mpiexec not found (apt-get install mpich)" >&2; exit 2; }
mkdir -p "$(dirname "$results")"

step() { echo "== $*" >&2; }
prefix() { local line; while IFS= read -r line; do echo "$1$line"; done; }
value() { awk -v name="$1" '$1 == name { print $2 }'; }  # "name value" lines on stdin

source "$here/busy.sh"  # busy_percent

# --- SPMD regions: ctx.allreduce of one value against MPI_Allreduce, in the same run ---
# Every rank of a raw MPI job is in the reduction, while a parc region has one rank fewer
# than its job (rank 0 manages): region size S compares raw_allreduce at -n S with
# spmd_bench and bench_spmd.py at -n S+1. Interleaved rounds, raw C++ Python raw C++
# Python ... raw, and each parc run against the mean of the raw runs on either side.
spmd_part() {
  spmd_results=${SPMD_RESULTS:-$here/results/spmd.md}
  spmd_rounds=${SPMD_ROUNDS:-3}
  read -ra spmd_sizes <<<"${SPMD_SIZES:-1 2 3}"
  python=${PYTHON:-/usr/bin/python3}  # Debian's: sees numpy
  have_python=1
  if [[ ! -d $build_dir/python/parc ]] || ! "$python" -c 'import numpy' 2>/dev/null; then
    have_python=0
    echo "run.sh: no $build_dir/python/parc or no numpy for $python: SPMD Python part skipped" >&2
  fi
  cores=$(nproc)
  spmd_busy_before=$(busy_percent)
  spmd_log="" cpp_rows="" py_rows=""
  py_kinds=(float array int)
  declare -A runs=()  # figure name -> its values in the runs of one size, space-separated
  keep() {  # keep <output> <figure names...>: appends each figure of one run
    local out=$1 name; shift
    for name; do runs[$name]+="$(value "$name" <<<"$out") "; done
  }
  raw_run() {
    step "SPMD size $size: raw MPI_Allreduce, -n $size ($iterations calls x 3)"
    out=$(timeout 300 "$mpiexec" -n "$size" "$bin/raw_allreduce" "$iterations" 3 "$warmup")
    spmd_log+=$(prefix "size$size raw$1 " <<<"$out")$'\n'
    keep "$out" raw_allreduce_us raw_allreduce_p50_us
  }
  median_awk='
    function median(s,    a, n, i, j, t) {
      n = split(s, a)
      for (i = 2; i <= n; ++i) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; --j) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
      return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }'
  # medians <figures...>: the median of each figure's runs, "a | b | ..."
  medians() {
    local name values=()
    for name; do values+=("${runs[$name]}"); done
    awk -v values="$(printf '%s;' "${values[@]}")" "$median_awk"'
      BEGIN { n = split(values, v, ";"); for (i = 1; i < n; ++i) printf "%s%.2f", (i > 1 ? " | " : ""), median(v[i]) }'
  }
  # row <parc mean figure> <parc p50 figure>: "mean | p50 | ratio means | ratio p50s", each
  # ratio the median over the rounds of a parc run over the mean of the raw runs around it
  row() {
    awk -v pm="${runs[$1]}" -v pp="${runs[$2]}" -v rm="${runs[raw_allreduce_us]}" \
        -v rp="${runs[raw_allreduce_p50_us]}" "$median_awk"'
      function ratios(parc, raw,    p, r, n, i, out) {
        n = split(parc, p); split(raw, r); out = ""
        for (i = 1; i <= n; ++i) out = out sprintf("%.3f ", p[i] / ((r[i] + r[i + 1]) / 2))
        return out
      }
      function times(r) { return sprintf(r < 0.095 ? "%.3fx" : "%.1fx", r) }
      BEGIN { printf "%.2f | %.2f | %s | %s", median(pm), median(pp), times(median(ratios(pm, rm))), times(median(ratios(pp, rp))) }'
  }
  for size in "${spmd_sizes[@]}"; do
    job=$((size + 1))
    iterations=${SPMD_ITERATIONS:-20000}
    # More reducing ranks than cores: raw MPI's blocking calls spin, and each call then
    # takes time slices (milliseconds); fewer calls keep the run short. parc's manager
    # sleeps while the region runs, so it is not counted.
    ((size <= cores)) || iterations=${SPMD_OVERSUBSCRIBED_ITERATIONS:-300}
    warmup=$((iterations / 10))
    runs=()
    raw_run 0
    for ((i = 1; i <= spmd_rounds; ++i)); do
      step "SPMD size $size: parc C++ ctx.allreduce, -n $job, round $i"
      out=$(timeout 300 "$mpiexec" -n "$job" "$bin/spmd_bench" iterations="$iterations" trials=3 \
            warmup="$warmup" regions=$((iterations / 100 + 20)))
      spmd_log+=$(prefix "size$size cpp$i " <<<"$out")$'\n'
      keep "$out" spmd_allreduce_us spmd_allreduce_p50_us spmd_region_run_us
      if ((have_python)); then
        step "SPMD size $size: parc Python ctx.allreduce, -n $job, round $i"
        out=$(PYTHONPATH="$build_dir/python${PYTHONPATH:+:$PYTHONPATH}" timeout 600 "$mpiexec" \
              -n "$job" "$python" "$here/python/bench_spmd.py" iterations="$iterations" trials=3 \
              warmup="$warmup")
        spmd_log+=$(prefix "size$size py$i " <<<"$out")$'\n'
        for kind in "${py_kinds[@]}"; do keep "$out" "py_allreduce_${kind}_us" "py_allreduce_${kind}_p50_us"; done
      fi
      raw_run "$i"
    done
    # One table row per size: medians over the rounds, and median ratios parc / raw.
    raw_cells=$(medians raw_allreduce_us raw_allreduce_p50_us)
    region_run=$(medians spmd_region_run_us)
    note=""
    ((size <= cores)) || note=" (more ranks than cores)"
    cpp_rows+="| $size$note | $size / $job | $raw_cells | $(row spmd_allreduce_us spmd_allreduce_p50_us) | $region_run |"$'\n'
    if ((have_python)); then
      py_row="| $size$note | $raw_cells"
      for kind in "${py_kinds[@]}"; do py_row+=" | $(row "py_allreduce_${kind}_us" "py_allreduce_${kind}_p50_us")"; done
      py_rows+="$py_row |"$'\n'
    fi
  done
  spmd_busy_after=$(busy_percent)

  mkdir -p "$(dirname "$spmd_results")"
  {
    echo "# parc SPMD allreduce against raw MPI_Allreduce"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $cores cores, MPICH $(pkg-config --modversion mpich 2>/dev/null || echo '?')," \
         "commit $(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo '?'), build $build_dir;" \
         "machine busy ${spmd_busy_before}% before, ${spmd_busy_after}% after (others' load)."
    echo "Written by \`bash bench/run.sh\` (\`make bench\`); $spmd_rounds rounds, 3 trials of" \
         "${SPMD_ITERATIONS:-20000} calls per run (${SPMD_OVERSUBSCRIBED_ITERATIONS:-300} when the region has more ranks than there are cores)."
    echo
    echo "Region size S = ranks in the reduction: raw MPI at \`-n S\`, parc at \`-n S+1\` (rank 0"
    echo "manages, the region is the S workers). Times are per call in µs: \"mean\" is the median over"
    echo "the runs of a run's mean, \"p50\" the median over the runs of a run's median call. A ratio is"
    echo "parc / raw per round (each parc run against the raw runs before and after it), median over"
    echo "the rounds."
    echo
    echo "## C++: \`ctx.allreduce(double, parc::sum)\` against \`MPI_Allreduce\` of one double"
    echo
    echo "| region size | ranks raw / parc | raw mean | raw p50 | parc mean | parc p50 | ratio means | ratio p50s | empty \`Spmd::run\`, µs (median) |"
    echo "|---|---|---|---|---|---|---|---|---|"
    printf '%s' "$cpp_rows"
    if ((have_python)); then
      echo
      echo "## Python: \`ctx.allreduce(value, parc.SUM)\` against the same raw runs"
      echo
      echo "float and numpy (8 float64) reduce inside MPI; int has no native path (allgather of pickles, then a fold)."
      echo
      echo "| region size | raw mean | raw p50 | float mean | float p50 | ratio means | ratio p50s | numpy[8] mean | numpy[8] p50 | ratio means | ratio p50s | int mean | int p50 | ratio means | ratio p50s |"
      echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
      printf '%s' "$py_rows"
    fi
    echo
    echo "## Raw output"
    echo
    echo '```text'
    printf '%s' "$spmd_log"
    echo '```'
  } >"$spmd_results.tmp"
  mv "$spmd_results.tmp" "$spmd_results"
  sed -n '/^## C++/,/^## Raw output/p' "$spmd_results" | sed '$d'
  if ((spmd_busy_before > 10 || spmd_busy_after > 10)); then
    echo "note: other processes kept the CPUs ${spmd_busy_before}% busy before the SPMD runs and" \
         "${spmd_busy_after}% after: these figures are noisy; rerun on a quiet machine"
  fi
  echo "(written to $spmd_results)"
}

if [[ ${PARTS:-all} == spmd ]]; then
  spmd_part
  exit 0
fi
busy_before=$(busy_percent)

read -ra raw_args <<<"${RAW_ARGS:-64 100000 3 10000}"
read -ra farm_args <<<"${FARM_ARGS:-}"
raw() { timeout 120 "$mpiexec" -n $ranks "$bin/raw_pingpong" "${raw_args[@]}"; }
farm() { timeout 600 "$mpiexec" -n $ranks "$bin/farm_bench" trials=3 "${farm_args[@]}" "$@"; }

log=""
raw_means=() raw_p50s=() raw_p99s=() farm_means=() farm_p50s=() farm_p99s=()
record_raw() {
  raw_means+=("$(value raw_round_trip_us <<<"$1")")
  raw_p50s+=("$(value raw_round_trip_p50_us <<<"$1")")
  raw_p99s+=("$(value raw_round_trip_p99_us <<<"$1")")
  bytes=$(value raw_message_bytes <<<"$1")
}
step "raw MPI ping-pong 0"
out=$(raw); log+=$(prefix "raw0 " <<<"$out")$'\n'; record_raw "$out"
for ((i = 1; i <= rounds; ++i)); do
  step "parc round trip $i"
  out=$(farm parts=rtt); log+=$(prefix "farm$i " <<<"$out")$'\n'
  farm_means+=("$(value farm_round_trip_us <<<"$out")")
  farm_p50s+=("$(value farm_round_trip_p50_us <<<"$out")")
  farm_p99s+=("$(value farm_round_trip_p99_us <<<"$out")")
  step "raw MPI ping-pong $i"
  out=$(raw); log+=$(prefix "raw$i " <<<"$out")$'\n'; record_raw "$out"
done

step "parc throughput"
out=$(farm parts=map,window); log+=$(prefix "" <<<"$out")$'\n'
map=$(value farm_map_tasks_per_s <<<"$out")
map_n=$(value farm_map_tasks <<<"$out")
win=$(value farm_window_tasks_per_s <<<"$out")
win_n=$(value farm_window <<<"$out")

one="" one_p50=""
if [[ ${ONE_CORE:-1} != 0 ]] && command -v taskset >/dev/null; then
  # Both ranks on one core, as when ranks outnumber cores: raw MPI's blocking calls
  # spin for whole time slices there, so only parc is measured.
  cpu=$(taskset -pc $$ | sed 's/.*: //; s/[,-].*//')
  step "parc round trip, both ranks on cpu $cpu"
  out=$(taskset -c "$cpu" timeout 300 "$mpiexec" -n $ranks "$bin/farm_bench" \
        parts=rtt round_trips=5000 trials=3)
  log+=$(prefix "one_core " <<<"$out")$'\n'
  one=$(value farm_round_trip_us <<<"$out")
  one_p50=$(value farm_round_trip_p50_us <<<"$out")
fi

step "idle worker CPU (${IDLE_WINDOW:-5} s)"
out=$(bash "$here/idle_cpu.sh" "$build_dir" "${IDLE_WINDOW:-5}"); log+=$out$'\n'
idle=$(value idle_worker_cpu_percent <<<"$out")
idle_ns=$(value idle_worker_cpu_percent_ns <<<"$out")
busy_after=$(busy_percent)

table=$(awk -v raw_means="${raw_means[*]}" -v raw_p50s="${raw_p50s[*]}" -v raw_p99s="${raw_p99s[*]}" \
            -v farm_means="${farm_means[*]}" -v farm_p50s="${farm_p50s[*]}" \
            -v farm_p99s="${farm_p99s[*]}" -v bytes="$bytes" \
            -v one="$one" -v one_p50="$one_p50" -v map="$map" -v map_n="$map_n" \
            -v win="$win" -v win_n="$win_n" -v idle="$idle" -v idle_ns="$idle_ns" '
  function verdict(ok) { return ok ? "ok" : "MISSED" }
  function median(s,    a, n, i, j, t) {
    n = split(s, a)
    for (i = 2; i <= n; ++i) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; --j) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  # Each farm run against the mean of the raw runs before and after it.
  function ratios(farm, raw,    f, r, n, i, out) {
    n = split(farm, f); split(raw, r); out = ""
    for (i = 1; i <= n; ++i) out = out sprintf("%.2f ", f[i] / ((r[i] + r[i + 1]) / 2))
    return out
  }
  function list(s,    a, n, i, out) {
    n = split(s, a); out = ""
    for (i = 1; i <= n; ++i) out = out (i > 1 ? ", " : "") sprintf("%.2f", a[i])
    return out
  }
  BEGIN {
    r_mean = ratios(farm_means, raw_means); r_p50 = ratios(farm_p50s, raw_p50s)
    raw = median(raw_means)
    fmt = "%-46s %12s   %s\n"
    printf fmt, "figure", "value", "target / notes"
    printf fmt, "raw MPI round trip (" bytes " B), mean us", sprintf("%.2f", raw), "runs: " list(raw_means)
    printf fmt, "  median, p99 us", sprintf("%.2f", median(raw_p50s)), sprintf("p99 %.2f", median(raw_p99s))
    printf fmt, "parc submit(noop).get() round trip, mean us", sprintf("%.2f", median(farm_means)), "runs: " list(farm_means)
    printf fmt, "  median, p99 us", sprintf("%.2f", median(farm_p50s)), sprintf("p99 %.2f", median(farm_p99s))
    printf fmt, "ratio parc / raw, means", sprintf("%.1fx", median(r_mean)), "<= 4x  " verdict(median(r_mean) <= 4) "  runs: " list(r_mean)
    printf fmt, "ratio parc / raw, medians", sprintf("%.1fx", median(r_p50)), "<= 4x  " verdict(median(r_p50) <= 4) "  runs: " list(r_p50)
    if (one != "")
      printf fmt, "parc round trip, both ranks on 1 core, us", sprintf("%.2f", one), sprintf("median %.2f", one_p50)
    printf fmt, "farm.map(noop, " map_n " ints), tasks/s", sprintf("%.0f", map), ""
    printf fmt, "  x raw round trip (tasks per raw RTT)", sprintf("%.2f", map * raw / 1e6), ""
    printf fmt, "submit+get, window of " win_n ", tasks/s", sprintf("%.0f", win), ""
    printf fmt, "  x raw round trip (tasks per raw RTT)", sprintf("%.2f", win * raw / 1e6), ""
    printf fmt, "idle worker CPU, % of a core", sprintf("%.2f", idle), "< 2%  " verdict(idle < 2) sprintf("  (schedstat %.2f)", idle_ns)
  }')

{
  echo "# parc bench, $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(nproc) cores," \
       "MPICH $(pkg-config --modversion mpich 2>/dev/null || echo '?'), $ranks ranks (1 manager, 1 worker)"
  echo "# commit $(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo '?')," \
       "build $build_dir; machine busy ${busy_before}% before, ${busy_after}% after (others' load)"
  echo "$table"
  echo
  echo "# raw output"
  printf '%s' "$log"
} >"$results.tmp"
mv "$results.tmp" "$results"
echo "$table"
if ((busy_before > 10 || busy_after > 10)); then
  echo "note: other processes kept the CPUs ${busy_before}% busy before the run and" \
       "${busy_after}% after: these figures are noisy; rerun on a quiet machine"
fi
echo "(written to $results)"
[[ ${SPMD:-1} == 0 ]] || spmd_part
