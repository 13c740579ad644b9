#!/usr/bin/env bash
# Install the Debian packages parc needs, and only those that are missing.
#
#   scripts/install-deps.sh            # build + test dependencies
#   scripts/install-deps.sh bench      # ... plus the benchmark peers (mpi4py, Dask distributed, ...)
#   scripts/install-deps.sh format     # ... plus clang-format
#   scripts/install-deps.sh fuzz       # ... plus clang 14 and libFuzzer (make fuzz)
#
# Idempotent and quick (a single dpkg-query) when everything is already present.
# Note: python3-mpi4py pulls Open MPI and flips the mpiexec/mpicc alternatives;
# parc is pinned to MPICH (pkg-config `mpich`, `mpiexec.mpich`), so that is harmless.
set -euo pipefail

required=(
  build-essential cmake pkg-config
  mpich libmpich-dev
  libopenblas-dev  # CBLAS for examples/cannon_mpi.cpp
  libcereal-dev libspdlog-dev libfmt-dev
  googletest libgtest-dev libgmock-dev
  pybind11-dev python3-dev python3-pybind11 python3-numpy python3-pytest
  python3-cloudpickle python3-tqdm  # optional for users; the tests exercise both paths
  python3-matplotlib  # python3 -m parc.timeline draws PARC_TRACE files (and its tests)
  libpython3.11-testsuite  # CPython's test_concurrent_futures, adapted to parc.TaskFarm
  slurm-wlm munge iproute2  # the cluster suite: Slurm daemons in network namespaces
)

declare -A groups=(
  [bench]="python3-mpi4py python3-distributed python3-cloudpickle python3-tqdm python3-matplotlib"
  [format]="clang-format"
  [fuzz]="clang-14 libclang-rt-14-dev"
)

usage() {
  echo "usage: $0 [group...]   (groups: ${!groups[*]})" >&2
}

wanted=("${required[@]}")
for group in "$@"; do
  case "$group" in
    -h|--help) usage; exit 0 ;;
  esac
  if [[ -z "${groups[$group]+x}" ]]; then
    echo "install-deps: unknown group '$group'" >&2
    usage
    exit 2
  fi
  read -r -a extra <<<"${groups[$group]}"
  wanted+=("${extra[@]}")
done

# One dpkg-query for all packages; a package counts as present when some
# architecture of it is fully installed ("ii"). Unknown packages print nothing.
declare -A present=()
while read -r status name; do
  [[ "$status" == ii ]] && present["${name%%:*}"]=1
done < <(dpkg-query -W -f='${db:Status-Abbrev} ${binary:Package}\n' "${wanted[@]}" 2>/dev/null || true)

missing=()
for pkg in "${wanted[@]}"; do
  [[ -n "${present[$pkg]+x}" ]] || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#wanted[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo=()
if [[ "$(id -u)" -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
  else
    echo "install-deps: not root and no sudo; install these by hand: ${missing[*]}" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "install-deps: installed ${missing[*]}"
