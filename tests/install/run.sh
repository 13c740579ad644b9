#!/usr/bin/env bash
# Install an already-built parc into a temporary prefix, then build and run a
# separate consumer project against it through find_package(parc).
#
#   tests/install/run.sh <build_dir>
set -euo pipefail

if (($# != 1)); then
  echo "usage: $0 <build_dir>" >&2
  exit 2
fi
build_dir="$(cd "$1" && pwd)"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mpiexec=mpiexec.mpich

tmp="$(mktemp -d "${TMPDIR:-/tmp}/parc-install-test.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

build_type="$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build_dir/CMakeCache.txt" 2>/dev/null || true)"

echo "== install $build_dir into $tmp/prefix"
cmake --install "$build_dir" --prefix "$tmp/prefix" >"$tmp/install.log" 2>&1 || {
  cat "$tmp/install.log"
  exit 1
}

echo "== configure + build the consumer"
cmake -S "$here/consumer" -B "$tmp/consumer-build" \
  -DCMAKE_PREFIX_PATH="$tmp/prefix" \
  -DCMAKE_BUILD_TYPE="${build_type:-RelWithDebInfo}"
cmake --build "$tmp/consumer-build" -j"$(nproc 2>/dev/null || echo 2)"

exe="$tmp/consumer-build/parc_consumer"

echo "== run serially"
timeout -k 5 60 "$exe"
for n in 2 4; do
  echo "== run with $mpiexec -n $n"
  timeout -k 5 60 "$mpiexec" -n "$n" "$exe"
done

# The Python package, where Debian's python3 looks under the prefix.
site="$(cd "$tmp/prefix" && ls -d lib/python3*/dist-packages)"
app="$here/python/user_app.py"
echo "== Python: $site, serially, PARC_SERIAL=3, $mpiexec -n 2 and -n 4"
export PYTHONPATH="$tmp/prefix/$site"
python=/usr/bin/python3
(cd "$tmp" && timeout -k 5 60 "$python" -c "import parc, sys; assert parc.__file__.startswith('$tmp'), parc.__file__")
timeout -k 5 60 "$python" "$app" | grep "total 22.5 on 1 ranks, 1 workers"
PARC_SERIAL=3 timeout -k 5 60 "$python" "$app" | grep "total 22.5 on 1 ranks, 3 workers"
for n in 2 4; do
  timeout -k 5 60 "$mpiexec" -n "$n" "$python" "$app" | grep "total 22.5 on $n ranks, $((n - 1)) workers"
done

echo "install_consumer: OK"
