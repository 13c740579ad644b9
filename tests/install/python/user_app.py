"""A user's script that knows only the public names: run against an installed parc."""

import parc


@parc.closure
def simulate(seed: int) -> float:
    if seed == 13:
        raise ValueError(f"unlucky seed {seed}")
    return seed * 0.5


def main():
    with parc.TaskFarm() as farm:
        total = sum(farm.map(simulate, range(10)))
        fut = farm.submit(simulate, 7)
        futs = farm.submit_batch(simulate, [(s,) for s in range(5)])
        done = sorted(f.result() for f in parc.as_completed(futs))
        assert fut.result() == 3.5 and done == [0.0, 0.5, 1.0, 1.5, 2.0]
    try:
        with parc.TaskFarm(policy="collect_all") as farm:
            list(farm.map(simulate, range(20)))
    except* ValueError as group:
        (error,) = group.exceptions
        assert error.parc_task > 0 and "simulate(13)" in error.__notes__[0]
    print(f"user_app: total {total} on {parc.size()} ranks, {parc.workers()} workers")


if __name__ == "__main__":
    parc.run(main)
