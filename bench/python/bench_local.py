"""The single-machine peers at their defaults, W worker processes each:
concurrent.futures.ProcessPoolExecutor(W) ("ppe") and multiprocessing.Pool(W) ("mp_pool").

    python3 bench_local.py [parts] [W=1]

prints JSON lines (see common.py). parts: throughput,latency,efficiency,payload (default
all); multiprocessing.Pool takes no part in payload. Pool.map runs at its default
chunksize; "submit" is apply_async of every task, then get of each.
"""

import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor

import common


def main():
    wanted = common.parts(sys.argv)
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    common.versions("ppe", workers, start_method=multiprocessing.get_start_method())
    with ProcessPoolExecutor(workers) as pool:
        common.measure("ppe", common.executor_api(pool), wanted)

    with multiprocessing.Pool(workers) as pool:
        api = common.Api(map_all=pool.map,
                         submit_all=lambda f, xs: [r.get() for r in [pool.apply_async(f, (x,)) for x in xs]],
                         call=lambda f, x: pool.apply_async(f, (x,)).get())
        common.measure("mp_pool", api, [p for p in wanted if p != "payload"])


if __name__ == "__main__":
    main()
