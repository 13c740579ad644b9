"""parc's Python task farm at its defaults, W workers (rank 0 manages):

    PYTHONPATH=build/python mpiexec.mpich -n W+1 python3 bench_parc.py [parts]

prints JSON lines (see common.py). parts: throughput,latency,efficiency,payload (default
all). Besides the two modes the other tools share (map, submit), throughput also measures
farm.submit_batch.
"""

import sys

import parc

import common


@parc.closure
def noop(x):
    return x


@parc.closure
def echo(arr):
    return arr


@parc.closure
def total(arr):
    return arr.sum()


spin = parc.closure(common.spin)


def main():
    wanted = common.parts(sys.argv)
    common.versions("parc", parc.size() - 1, version=getattr(parc, "__version__", "?"))
    with parc.TaskFarm() as farm:
        common.measure("parc", common.executor_api(farm), wanted,
                       common.Tasks(noop=noop, spin=spin, echo=echo, total=total))
        if "throughput" in wanted:
            common.throughput("parc", "submit_batch",
                              lambda n: [f.result() for f in farm.submit_batch(noop, [(i,) for i in range(n)])])


if __name__ == "__main__":
    parc.run(main)
