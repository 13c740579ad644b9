# Sourced by the bench scripts.
# How busy the machine is without us: the CPUs' busy share over one second.
busy_percent() {
  local a b
  a=$(head -1 /proc/stat); sleep 1; b=$(head -1 /proc/stat)
  awk -v a="$a" -v b="$b" 'BEGIN {
    n = split(a, x); split(b, y); total = 0; idle = 0
    for (i = 2; i <= n && i <= 9; ++i) { d = y[i] - x[i]; total += d; if (i == 5 || i == 6) idle += d }
    printf "%.0f\n", (total > 0 ? 100 * (total - idle) / total : 0)
  }'
}
