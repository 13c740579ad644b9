"""Cannon's matrix multiply with parc proxies and numpy (after PyGAS's matmul.pygas.py).

    python3 cannon.py [n=2048] [repeats=1]         serial: a region of one rank
    PARC_SERIAL=4 python3 cannon.py 64             four simulated ranks (a 2 x 2 grid)
    mpiexec.mpich -n 5 python3 cannon.py 2048      rank 0 manages, ranks 1-4 multiply

The region's ranks form a q x q grid; rank (r, c) builds blocks (r, c) of A and B and
shares them with ctx.share. It computes block (r, c) of C = A B as the sum over k of
A(r, k) B(k, c), reading the blocks it lacks through their proxies, in Cannon's order
(k = r + c + step, mod q: at each step every block is read by one rank of its grid row
or column), and reads the next step's blocks ahead (p.async_.resolve()) while numpy
multiplies. No shifting and no skew: proxies let each rank fetch what it needs.

The inputs are those of cannon_mpi.cpp, the same algorithm in C++ with MPI and BLAS:
A[i][k] = i + k and B[k][j] = k + 2j, whose product is exact in doubles, so every
entry is checked. Prints one JSON line, as cannon_mpi does; exits 1 if an entry is wrong.
"""

import math
import sys
import time

import numpy as np

import parc


def blocks(n, q, row, col):
    """Block (row, col) of A, of B and of the exact product C."""
    b = n // q
    i = np.arange(row * b, (row + 1) * b, dtype=float)[:, None]
    j = np.arange(col * b, (col + 1) * b, dtype=float)[None, :]
    exact = 2 * n * i * j + (i + 2 * j) * (n * (n - 1) // 2) + (n - 1) * n * (2 * n - 1) // 6
    return i + j, i + 2 * j, exact


def ahead(proxy):
    """Starts reading the proxy's block; returns a call that gives it. A local block
    needs no reading: its resolve() is the block itself."""
    return proxy.resolve if parc.is_local(proxy) else proxy.async_.resolve().result


@parc.closure
def cannon(ctx, n, repeats):
    q = math.isqrt(ctx.size)
    row, col = divmod(ctx.rank, q)
    a, b, exact = blocks(n, q, row, col)
    # Every rank's blocks, shared: A[r * q + c] is a proxy to block (r, c) of A.
    A = [ctx.share(a, root=r) for r in range(ctx.size)]
    B = [ctx.share(b, root=r) for r in range(ctx.size)]

    def fetch(step):
        k = (row + col + step) % q
        return ahead(A[row * q + k]), ahead(B[k * q + col])

    best = math.inf
    for _ in range(repeats):
        ctx.barrier()
        start = time.perf_counter()
        pending = fetch(0)
        for step in range(q):
            current, pending = pending, fetch(step + 1) if step + 1 < q else None
            x, y = (get() for get in current)  # waits for the blocks read ahead
            if step == 0:
                c = x @ y
            else:
                c += x @ y
        # The multiply takes as long as its slowest rank (and every read is done).
        best = min(best, ctx.allreduce(time.perf_counter() - start, parc.MAX))
    return best, ctx.allreduce(float(np.abs(c - exact).max()), parc.MAX)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2048
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    region = parc.Spmd()
    size = len(region.ranks)
    q = math.isqrt(size)
    problem = (f"needs a square region (1, 4, 9, ... ranks), got {size}" if q * q != size
               else f"n must be a positive multiple of q = {q}, got {n}" if n < 1 or n % q
               else "repeats must be at least 1" if repeats < 1 else None)
    if problem:
        print(f"cannon.py: {problem}\nusage: cannon.py [n=2048] [repeats=1]", file=sys.stderr)
        return 2
    seconds, error = region.run(cannon, n, repeats)[0]
    print(f'{{"impl": "python/parc", "n": {n}, "ranks": {size}, "seconds": {seconds:.6f}, '
          f'"max_error": {error:g}}}')
    return 0 if error == 0 else 1


if __name__ == "__main__":
    parc.run(main)
