#!/usr/bin/env bash
# Runs each libFuzzer target for a while on a copy of its seed corpus (make fuzz).
#   fuzz/run.sh BUILD_DIR SECONDS TARGET...
# Prints one summary line per target (runs, seconds, corpus size, result) and keeps them
# in BUILD_DIR/fuzz-summary.txt; a crash's input lands in BUILD_DIR/fuzz-artifacts/TARGET/.
# Exits 1 when some target found something: replay it with BUILD_DIR/TARGET_fuzz FILE, fix
# the decoder, and add the file to fuzz/regressions/TARGET/.
set -uo pipefail

build=$1
seconds=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
summary="$build/fuzz-summary.txt"
: >"$summary"
failed=0

for target in "$@"; do
  work="$build/fuzz-corpus/$target"
  artifacts="$build/fuzz-artifacts/$target/"
  log="$build/fuzz-logs/$target.log"
  rm -rf "$work" "$artifacts"
  mkdir -p "$work" "$artifacts" "$(dirname "$log")"
  cp "$here/corpus/$target"/* "$work"/ 2>/dev/null || true
  start=$(date +%s)
  # Memory limits make a huge allocation a finding; -timeout makes a hang one.
  nice -n 10 "$build/fuzz/${target}_fuzz" "$work" -max_total_time="$seconds" \
    -rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=10 -max_len=4096 \
    -print_final_stats=1 -artifact_prefix="$artifacts" >"$log" 2>&1
  status=$?
  elapsed=$(($(date +%s) - start))
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  corpus=$(find "$work" -type f | wc -l)
  if [[ $status -eq 0 ]]; then
    result="nothing found"
  else
    result="FOUND (exit $status): $(ls "$artifacts" | head -1), see $log"
    failed=1
  fi
  line=$(printf '%-14s %4ss  %10s runs  corpus %5s  %s' "$target" "$elapsed" "${runs:-?}" \
    "$corpus" "$result")
  echo "$line" | tee -a "$summary"
done
exit $failed
