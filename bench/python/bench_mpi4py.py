"""mpi4py.futures' MPIPoolExecutor at its defaults, 1 worker:

    mpiexec.openmpi -n 2 python3 -m mpi4py.futures bench_mpi4py.py [parts]

prints JSON lines (see common.py). parts: throughput,latency,payload (default all).
"""

import sys

from mpi4py import MPI
from mpi4py.futures import MPIPoolExecutor

import common
from common import echo, noop, total


def main():
    wanted = common.parts(sys.argv)
    common.versions("mpi4py", version=__import__("mpi4py").__version__,
                    mpi=MPI.Get_library_version().split(",")[0].strip("\0 \n"))
    with MPIPoolExecutor() as pool:
        pool.submit(noop, 0).result()  # waits for the worker to be up
        if "throughput" in wanted:
            common.throughput("mpi4py", "map", lambda n: list(pool.map(noop, range(n))))
            common.throughput("mpi4py", "submit",
                              lambda n: [f.result() for f in [pool.submit(noop, i) for i in range(n)]])
        if "latency" in wanted:
            common.latency("mpi4py", lambda i: pool.submit(noop, i).result())
        if "payload" in wanted:
            common.payload("mpi4py", lambda a: pool.submit(echo, a).result(),
                           lambda a: pool.submit(total, a).result())


if __name__ == "__main__":
    main()
