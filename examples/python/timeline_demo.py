"""What a PARC_TRACE timeline shows: a map of uneven tasks, a second farm, an SPMD region.

    PARC_TRACE=trace.json mpiexec.mpich -n 4 python3 timeline_demo.py
    python3 -m parc.timeline trace.json -o trace.png

The picture in docs/tracing.md was drawn from this run. The simulations take 2 to 40 ms,
so the end of their map leaves some workers idle while the last ones finish; then come
the summaries (3 ms each), and every worker joins one SPMD region that sums them.
"""

import time

import parc


def busy(seconds):
    """Computes (not sleeps) for `seconds`, as a real task would."""
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        x += 1
    return x


@parc.closure
def simulate(seed):
    busy(0.002 + 0.038 * (seed % 12) / 11)  # 2 to 40 ms
    return seed * 0.5


@parc.closure
def summarize(value):
    busy(0.003)
    return round(value, 1)


def checksum(ctx, values):
    mine = sum(values[ctx.rank::ctx.size])
    return ctx.allreduce(mine)


def main():
    with parc.TaskFarm() as farm:
        values = list(farm.map(simulate, range(36)))
        summaries = list(farm.map(summarize, values))
    totals = parc.Spmd().run(checksum, summaries)
    print(f"{len(values)} simulations, {len(summaries)} summaries, checksum {totals[0]} "
          f"on {parc.workers()} workers")


if __name__ == "__main__":
    parc.run(main)
