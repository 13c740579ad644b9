"""Dask distributed at its defaults, W worker processes of one thread each:

    python3 bench_dask.py [parts] [W=1]

prints JSON lines (see common.py). parts: throughput,latency,efficiency (payload is not
measured for Dask). The cluster is `LocalCluster(n_workers=W, threads_per_worker=1,
processes=True)`, otherwise at its defaults, driven through `Client`: map is
`client.gather(client.map(f, xs))` (Dask has no chunksize: one task per input), submit is
`client.submit` of every task, then `result()` of each, a call is
`client.submit(f, x).result()`. Every call passes `pure=False`: Dask otherwise names a task
by a hash of its function and arguments and runs calls with equal arguments once (the
efficiency list repeats one task length; a warm-up's results could serve a timed run).
"""

import sys

import dask
import distributed
from distributed import Client, LocalCluster

import common


def main():
    wanted = [p for p in common.parts(sys.argv) if p != "payload"]
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    common.versions("dask", workers, version=distributed.__version__, dask=dask.__version__)
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True) as cluster, \
            Client(cluster) as client:
        api = common.Api(
            map_all=lambda f, xs: client.gather(client.map(f, xs, pure=False)),
            submit_all=lambda f, xs: [fu.result() for fu in [client.submit(f, x, pure=False) for x in xs]],
            call=lambda f, x: client.submit(f, x, pure=False).result())
        common.measure("dask", api, wanted)


if __name__ == "__main__":
    main()
