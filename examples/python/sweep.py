"""A parameter sweep with numpy payloads: diffuse one heat profile at several rates.

    python3 sweep.py                       serial (one process, one simulated worker)
    PARC_SERIAL=4 python3 sweep.py         serial, four simulated workers
    mpiexec.mpich -n 4 python3 sweep.py    rank 0 manages, ranks 1-3 run the solver

Every task receives the initial profile (a 512 KiB float64 array) and returns the final
one. Arrays travel as pickle protocol 5 out-of-band buffers: their bytes are sent as
they are, never copied into the pickle stream.
"""

import numpy as np

import parc

POINTS = 1 << 16
STEPS = 200
RATES = np.linspace(0.05, 0.5, 10)  # r = kappa * dt / dx**2; explicit Euler needs r <= 0.5


@parc.closure
def diffuse(u: np.ndarray, rate: float, steps: int) -> np.ndarray:
    """`steps` explicit steps of the 1-D heat equation on a ring (periodic ends)."""
    for _ in range(steps):  # u is this task's own copy: update it in place
        u += rate * (np.roll(u, 1) - 2.0 * u + np.roll(u, -1))
    return u


def main():
    x = np.linspace(0.0, 1.0, POINTS, endpoint=False)
    u0 = np.exp(-(((x - 0.5) / 0.0005) ** 2))  # a narrow hot spot in the middle

    with parc.TaskFarm() as farm:
        # One task per rate; the same array goes with each of them.
        futures = farm.submit_batch(diffuse, [(u0, rate, STEPS) for rate in RATES])
        rate_of = {f: rate for f, rate in zip(futures, RATES)}
        profiles = {}
        for f in parc.as_completed(futures):  # in completion order, not submission order
            profiles[rate_of[f]] = f.result()

    print(f"{'rate':>6}  {'peak':>8}  {'heat':>10}")
    peaks = []
    for rate in RATES:
        u = profiles[rate]
        assert u.shape == u0.shape and u.dtype == u0.dtype
        peaks.append(u.max())
        print(f"{rate:6.3f}  {u.max():8.5f}  {u.sum():10.6f}")

    # Checks: the ring loses no heat, and a faster rate flattens the spot more.
    conserved = all(abs(profiles[r].sum() - u0.sum()) < 1e-9 * u0.sum() for r in RATES)
    flatter = all(a > b for a, b in zip(peaks, peaks[1:]))
    print(f"{len(profiles)} profiles of {POINTS} points; heat conserved: {conserved}; "
          f"peak falls as the rate grows: {flatter}")
    return 0 if conserved and flatter else 1


if __name__ == "__main__":
    parc.run(main)
