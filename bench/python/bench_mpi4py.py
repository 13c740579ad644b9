"""mpi4py.futures' MPIPoolExecutor at its defaults, W workers:

    mpiexec.openmpi --oversubscribe -n W+1 python3 -m mpi4py.futures bench_mpi4py.py [parts]

prints JSON lines (see common.py). parts: throughput,latency,efficiency,payload (default all).
"""

import sys

from mpi4py import MPI
from mpi4py.futures import MPIPoolExecutor

import common


def main():
    wanted = common.parts(sys.argv)
    common.versions("mpi4py", MPI.COMM_WORLD.Get_size() - 1,
                    version=__import__("mpi4py").__version__,
                    mpi=MPI.Get_library_version().split(",")[0].strip("\0 \n"))
    with MPIPoolExecutor() as pool:
        common.measure("mpi4py", common.executor_api(pool), wanted)


if __name__ == "__main__":
    main()
