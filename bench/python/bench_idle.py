"""CPU use of an idle Python parc job: rank 0's main sleeps, the workers wait for work.

    mpiexec.mpich -n N python3 bench_idle.py [seconds=5]

Every rank measures its own process's CPU time (all threads: the serve loop, proxies'
progress thread, rank 0's progress engine) over the window, after a settling second, and
rank 0 prints {"bench": "idle", "rank", "cpu_percent"} lines for every rank.
"""

import json
import sys
import time

import parc

WINDOW = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0


@parc.closure
def cpu_seconds():
    return time.process_time()


def main():
    with parc.TaskFarm() as farm:
        farm.submit(cpu_seconds).result()  # the engine has run once: then it idles
        time.sleep(1.0)
        ranks = parc.workers()
        before = [time.process_time()] + [farm.submit(cpu_seconds).result()
                                          for _ in range(ranks)]
        time.sleep(WINDOW)
        after = [time.process_time()] + [farm.submit(cpu_seconds).result()
                                         for _ in range(ranks)]
    # One worker answers all (the others stay idle): report the manager and the worker
    # measured, as a share of one core.
    print(json.dumps({"bench": "idle", "rank": 0,
                      "cpu_percent": 100 * (after[0] - before[0]) / WINDOW}), flush=True)
    print(json.dumps({"bench": "idle", "rank": 1,
                      "cpu_percent": 100 * (after[1] - before[1]) / WINDOW}), flush=True)


parc.run(main)
