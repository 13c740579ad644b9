"""Steady-state heat on a square plate: Jacobi sweeps in an SPMD region.

    python3 heat.py                       serial: a region of one simulated rank
    PARC_SERIAL=3 python3 heat.py         serial: three simulated ranks (threads)
    mpiexec.mpich -n 4 python3 heat.py    rank 0 manages, ranks 1-3 form the region

The plate's top edge is held at 100 degrees and its other edges at 0. Its rows are
split into blocks, one per region rank. Before each sweep, neighbouring ranks swap
their edge rows (numpy arrays, sent out of band) with ctx.sendrecv; every CHECK sweeps
the ranks agree on the largest change with ctx.allreduce(..., parc.MAX), so they all
stop at the same sweep. Region rank 0 gathers the blocks.

A Jacobi sweep computes each point from the previous field only, with the same
operations in the same order whatever the split, so the field, the sweep count and the
checksum are the same, bit for bit, at any number of ranks: the example checks that
against a one-block solve and exits 1 if it does not hold.
"""

import numpy as np

import parc

N = 40  # interior points per side
TOP = 100.0  # temperature of the top edge; the other three edges are at 0
TOLERANCE = 1e-3  # stop when no point changes by more than this in a sweep
CHECK = 10  # sweeps between convergence checks (one allreduce each)
MAX_SWEEPS = 100_000


def plate(n):
    """The initial plate with its boundary: (n + 2) x (n + 2), interior at 0."""
    u = np.zeros((n + 2, n + 2))
    u[0, 1:-1] = TOP
    return u


def block_of(rank, size, n):
    """The first interior row (1-based, as in plate()) and the row count of `rank`'s
    block: balanced blocks, the first n % size ranks get one row more."""
    base, extra = divmod(n, size)
    return 1 + rank * base + min(rank, extra), base + (rank < extra)


def sweep(u, new):
    """One Jacobi sweep of the rows of `u` between its first and last (ghost) rows."""
    new[1:-1, 1:-1] = 0.25 * (u[:-2, 1:-1] + u[2:, 1:-1] + u[1:-1, :-2] + u[1:-1, 2:])


@parc.closure
def solve(ctx, n, tolerance):
    """Region rank r owns one block of rows plus a ghost row above and below it (the
    plate's boundary for the first and last blocks). Returns (plate, sweeps) on region
    rank 0 and None elsewhere."""
    first, count = block_of(ctx.rank, ctx.size, n)
    if count == 0:
        raise ValueError(f"a {n}-row plate cannot be split over {ctx.size} ranks")
    u = plate(n)[first - 1:first + count + 1].copy()
    new = u.copy()
    above = ctx.rank - 1 if ctx.rank > 0 else None
    below = ctx.rank + 1 if ctx.rank < ctx.size - 1 else None
    sweeps = 0
    while True:
        for _ in range(CHECK):
            # Halo exchange: my edge rows go to my neighbours' ghost rows. Sends are
            # buffered, so the order of the two exchanges cannot deadlock.
            if above is not None:
                u[0] = ctx.sendrecv(u[1], above)
            if below is not None:
                u[-1] = ctx.sendrecv(u[-2], below)
            sweep(u, new)
            u, new = new, u
        sweeps += CHECK
        change = float(np.abs(u[1:-1] - new[1:-1]).max())  # over the last sweep
        if ctx.allreduce(change, parc.MAX) < tolerance or sweeps >= MAX_SWEEPS:
            break
    blocks = ctx.gather(u[1:-1], root=0)
    if ctx.rank != 0:
        return None
    whole = plate(n)
    whole[1:-1] = np.vstack(blocks)
    return whole, sweeps


def solve_in_one_block(n, sweeps):
    """The same sweeps on the whole plate at once, for the check."""
    u, new = plate(n), plate(n)
    for _ in range(sweeps):
        sweep(u, new)
        u, new = new, u
    return u


def main():
    region = parc.Spmd()
    print(f"SPMD region of {len(region.ranks)} rank(s)")
    u, sweeps = region.run(solve, N, TOLERANCE)[0]
    interior = u[1:-1, 1:-1]
    print(f"plate {N} x {N}, top edge at {TOP:g} degrees: converged in {sweeps} Jacobi "
          f"sweeps (largest change < {TOLERANCE:g})")
    print(f"checksum {interior.sum():.6f}, centre {u[N // 2 + 1, N // 2 + 1]:.6f}, "
          f"hottest {interior.max():.6f}")

    same = np.array_equal(u, solve_in_one_block(N, sweeps))
    bounded = bool((interior >= 0).all() and (interior <= TOP).all())
    mirror = bool(np.allclose(interior, interior[:, ::-1], rtol=0, atol=1e-9))
    print(f"same field as one block: {same}; within the edge temperatures: {bounded}; "
          f"left-right symmetric: {mirror}")
    return 0 if same and bounded and mirror else 1


if __name__ == "__main__":
    parc.run(main)
