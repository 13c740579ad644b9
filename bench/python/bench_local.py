"""The single-machine peers at their defaults, 1 worker process each:
concurrent.futures.ProcessPoolExecutor(1) ("ppe") and multiprocessing.Pool(1) ("mp_pool").

    python3 bench_local.py [parts]

prints JSON lines (see common.py). parts: throughput,latency,payload (default all);
multiprocessing.Pool takes part in throughput and latency only.
"""

import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor

import common
from common import noop


def main():
    wanted = common.parts(sys.argv)
    common.versions("ppe", start_method=multiprocessing.get_start_method())
    with ProcessPoolExecutor(1) as pool:
        common.measure_executor("ppe", pool, wanted)

    with multiprocessing.Pool(1) as pool:
        pool.apply(noop, (0,))
        if "throughput" in wanted:
            common.throughput("mp_pool", "map", lambda n: pool.map(noop, range(n)))
            common.throughput("mp_pool", "submit",  # apply_async all, then get all
                              lambda n: [r.get() for r in [pool.apply_async(noop, (i,)) for i in range(n)]])
        if "latency" in wanted:
            common.latency("mp_pool", lambda i: pool.apply_async(noop, (i,)).get())


if __name__ == "__main__":
    main()
