"""Monte Carlo estimate of pi on a task farm: each task throws darts with its own seed.

    python3 pi.py                          serial (one process, one simulated worker)
    PARC_SERIAL=4 python3 pi.py            serial, four simulated workers
    mpiexec.mpich -n 4 python3 pi.py       rank 0 manages, ranks 1-3 throw darts
"""

import itertools
import math

import numpy as np

import parc

TASKS = 200
DARTS_PER_TASK = 200_000


# A closure: declared at module top level, so every rank knows it under the same id
# and a task travels as (id, seed, darts), not as code.
@parc.closure
def count_hits(seed: int, darts: int) -> int:
    """Darts that land inside the unit quarter circle, out of `darts` thrown."""
    rng = np.random.default_rng(seed)
    x = rng.random(darts)
    y = rng.random(darts)
    return int(np.count_nonzero(x * x + y * y <= 1.0))


def main():
    # Runs on rank 0 only; the other ranks serve the farm's tasks.
    with parc.TaskFarm() as farm:
        # Like Executor.map: one task per (seed, darts) pair, results in seed order.
        # The inputs are read lazily and the tasks sent in batches.
        hits = farm.map(count_hits, range(TASKS), itertools.repeat(DARTS_PER_TASK))
        total = sum(hits)
    darts = TASKS * DARTS_PER_TASK
    pi = 4.0 * total / darts
    workers = parc.workers()  # size() - 1 under mpiexec; PARC_SERIAL's count serially
    print(f"pi ~= {pi:.6f} from {darts:,} darts on {workers} worker{'s' * (workers > 1)}"
          f"{' (serial)' if parc.serial() else ''}")
    return 0 if abs(pi - math.pi) < 0.01 else 1  # every rank exits with this code


if __name__ == "__main__":
    parc.run(main)
