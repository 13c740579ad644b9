#!/usr/bin/env bash
# Cannon's matrix multiply: Python with parc proxies and numpy (examples/python/cannon.py)
# against C++ with MPI and BLAS (examples/cannon_mpi.cpp), 4 ranks multiplying in both,
# and the lines of code of both. Writes bench/results/cannon.md.
#
#   bash bench/cannon.sh [build_dir=build]
#
# Interleaved runs, C++ Python C++ Python ... C++: each Python run is compared with the
# mean of the C++ runs on either side of it, since the machine's speed drifts between
# runs (see README.md). A run's figure is its best multiply of REPEATS (setup excluded,
# as timed by the programs themselves). Both run with OPENBLAS_NUM_THREADS=1: one BLAS
# thread per rank.
#
# Environment: ROUNDS (Python runs, default 3), N (matrix order, default 2048), REPEATS
# (multiplies per run, default 5), PYTHON (default /usr/bin/python3), RESULTS (output
# file, default bench/results/cannon.md).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
build_dir=$(cd "${1:-build}" && pwd)
results=${RESULTS:-$here/results/cannon.md}
rounds=${ROUNDS:-3}
n=${N:-2048}
repeats=${REPEATS:-5}
python=${PYTHON:-/usr/bin/python3}  # Debian's: sees numpy
mpiexec=mpiexec.mpich  # never `mpiexec`: it may be Open MPI's
cpp_program=$repo/examples/cannon_mpi.cpp
py_program=$repo/examples/python/cannon.py

[[ -x $build_dir/examples/cannon_mpi ]] || {
  echo "cannon.sh: $build_dir/examples/cannon_mpi is missing; build first (cmake --build $build_dir)" >&2
  exit 2
}
[[ -d $build_dir/python/parc ]] || { echo "cannon.sh: no $build_dir/python/parc; build first" >&2; exit 2; }
command -v "$mpiexec" >/dev/null || { echo "cannon.sh: $mpiexec not found (apt-get install mpich)" >&2; exit 2; }
source "$here/busy.sh"  # busy_percent
export OPENBLAS_NUM_THREADS=1

step() { echo "== $*" >&2; }
# The "seconds" of a program's JSON line, after checking the line says the product is right.
seconds() {
  "$python" -c 'import json, sys
line = json.loads(sys.stdin.read().strip().splitlines()[-1])
assert line["max_error"] == 0, line
print(line["seconds"])'
}
cpp_run() {
  step "C++/MPI, -n 4, $1"
  out=$(timeout 600 "$mpiexec" -n 4 "$build_dir/examples/cannon_mpi" "$n" "$repeats")
  log+="cpp$1 $out"$'\n'
  cpp+=("$(seconds <<<"$out")")
}
py_run() {
  step "Python/parc, -n 5 (rank 0 manages, 4 multiply), $1"
  out=$(PYTHONPATH="$build_dir/python${PYTHONPATH:+:$PYTHONPATH}" timeout 600 "$mpiexec" -n 5 \
        "$python" "$py_program" "$n" "$repeats")
  log+="py$1 $out"$'\n'
  py+=("$(seconds <<<"$out")")
}

busy_before=$(busy_percent)
log="" cpp=() py=()
cpp_run 0
for ((i = 1; i <= rounds; ++i)); do
  py_run "$i"
  cpp_run "$i"
done
busy_after=$(busy_percent)

# Lines of code: lines that are neither blank nor only a comment; in Python docstrings
# count as comments too (tokenize finds the code lines, ast the docstrings).
loc() {
  "$python" - "$1" <<'EOF'
import ast, io, sys, tokenize
path = sys.argv[1]
text = open(path).read()
if path.endswith(".py"):
    code = set()
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
            tokenize.ENDMARKER}
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type not in skip:
            code.update(range(token.start[0], token.end[0] + 1))
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) \
                and ast.get_docstring(node) is not None:
            code -= set(range(node.body[0].lineno, node.body[0].end_lineno + 1))
    print(len(code), len(text.splitlines()))
else:  # C++: // comments only (the file has no /* */ ones)
    lines = text.splitlines()
    print(sum(1 for line in lines if line.strip() and not line.strip().startswith("//")),
          len(lines))
EOF
}
read -r cpp_loc cpp_lines < <(loc "$cpp_program")
read -r py_loc py_lines < <(loc "$py_program")

table=$(awk -v cpp="${cpp[*]}" -v py="${py[*]}" '
  function median(s,    a, n, i, j, t) {
    n = split(s, a)
    for (i = 2; i <= n; ++i) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; --j) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  BEGIN {
    split(cpp, c); n = split(py, p); ratios = ""
    print "| round | C++/MPI s (before, after) | Python/parc s | ratio Python / C++ |"
    print "|---|---|---|---|"
    for (i = 1; i <= n; ++i) {
      r = p[i] / ((c[i] + c[i + 1]) / 2); ratios = ratios r " "
      printf "| %d | %.4f, %.4f | %.4f | %.3f |\n", i, c[i], c[i + 1], p[i], r
    }
    m = median(ratios)
    printf "| **median** | %.4f | %.4f | **%.3f** (target <= 1.05: %s) |\n", median(cpp), median(py), m, (m <= 1.05 ? "ok" : "MISSED")
  }')

mkdir -p "$(dirname "$results")"
{
  echo "# Cannon's matrix multiply: Python + parc proxies against C++ + MPI"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, MPICH $(pkg-config --modversion mpich 2>/dev/null || echo '?')," \
       "OpenBLAS $(pkg-config --modversion openblas 2>/dev/null || echo '?') (one thread per rank)," \
       "commit $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?'), build $build_dir;" \
       "machine busy ${busy_before}% before, ${busy_after}% after (others' load)."
  echo "Written by \`bash bench/cannon.sh\`. n = $n, 4 ranks multiplying in both (\`mpiexec.mpich -n 4"
  echo "cannon_mpi $n $repeats\`, \`mpiexec.mpich -n 5 python3 cannon.py $n $repeats\`: parc's rank 0"
  echo "manages). Seconds: a run's best of $repeats multiplies, as timed by the program (setup"
  echo "excluded, the slowest rank's time). Ratio: a Python run over the mean of the C++ runs before"
  echo "and after it; median over $rounds rounds."
  echo
  echo "$table"
  echo
  echo "## Lines of code"
  echo
  echo "Non-blank lines that are not only a comment (Python: docstrings count as comments, found"
  echo "with \`tokenize\` and \`ast\`; C++: \`//\` lines), counted by bench/cannon.sh."
  echo
  echo "| program | lines of code | lines in the file |"
  echo "|---|---|---|"
  echo "| [\`examples/cannon_mpi.cpp\`](../../examples/cannon_mpi.cpp) (C++20, MPI, CBLAS) | $cpp_loc | $cpp_lines |"
  echo "| [\`examples/python/cannon.py\`](../../examples/python/cannon.py) (parc proxies, numpy) | $py_loc | $py_lines |"
  echo
  echo "## Raw output"
  echo
  echo '```text'
  printf '%s' "$log"
  echo '```'
} >"$results.tmp"
mv "$results.tmp" "$results"
echo "$table"
echo "lines of code: C++ $cpp_loc, Python $py_loc"
if ((busy_before > 10 || busy_after > 10)); then
  echo "note: other processes kept the CPUs ${busy_before}% busy before the runs and" \
       "${busy_after}% after: these figures are noisy; rerun on a quiet machine"
fi
echo "(written to $results)"
