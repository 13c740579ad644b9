"""Remote read bandwidth and method-call latency between two ranks, as PyGAS's Figure 1:

    PYTHONPATH=build/python mpiexec.mpich -n 2 python3 bench_bandwidth.py parc
    mpiexec.openmpi -n 2 python3 bench_bandwidth.py mpi4py

A read of N bytes is a request/reply: rank 0 asks rank 1 (the owner) and ends up with
the N bytes of a uint8 array in its memory. For N = 1, 4, 16, ... 64 MiB (powers of 4),
after one warm-up read whose result is checked, reads are timed one by one for at least
BANDWIDTH_SECONDS (default 0.2) and at least 3 reads; the figure is the median.

parc:   p.resolve() of parc.Proxy.create(np.ones, N, dtype=np.uint8, owner=1); latency
        of q.add(1) on a proxy to a Counter on rank 1.
mpi4py: "mpi4py pickle": comm.send(n) / comm.send(array) / comm.recv() (pickle path);
        "mpi4py buffer": comm.Send / comm.Recv of an int request and of the array into
        an array preallocated on the reader (mpi4py's best case); latency: a pickled
        small tuple there and back.

Prints JSON lines {"series", "bytes", "seconds", "reads", "round"} and
{"series", "latency_us", "calls", "round"}. Environment: BENCH_ROUND (copied into
every line), BANDWIDTH_SECONDS, BANDWIDTH_MAX (largest read, default 64 MiB),
LATENCY_SECONDS (default 0.5, after 200 warm-up calls).
"""

import json
import os
import statistics
import sys
import time

import numpy as np

ROUND = int(os.environ.get("BENCH_ROUND", "1"))
SECONDS = float(os.environ.get("BANDWIDTH_SECONDS", "0.2"))
MAX_BYTES = int(os.environ.get("BANDWIDTH_MAX", str(64 << 20)))
LATENCY_SECONDS = float(os.environ.get("LATENCY_SECONDS", "0.5"))
SIZES = [4**k for k in range(14) if 4**k <= MAX_BYTES]  # 1 B ... 64 MiB; 16 MiB is 4**12


def emit(**fields):
    print(json.dumps({**fields, "round": ROUND}), flush=True)


def timed(call, seconds, warmup=1):
    """Median seconds per call over at least `seconds` and 3 calls, one clock pair each."""
    for _ in range(warmup):
        call()
    times = []
    clock = time.perf_counter
    end = clock() + seconds
    while len(times) < 3 or clock() < end:
        start = clock()
        call()
        times.append(clock() - start)
    return statistics.median(times), len(times)


def check(series, out, n):
    """Once per size, outside the timed loop: a broken transfer must fail loudly."""
    if out.dtype != np.uint8 or out.size != n or out[n // 2] != 1 or out[-1] != 1:
        raise AssertionError(f"{series}: wrong array for a read of {n} bytes: "
                             f"{out.dtype} x {out.size}, byte {n // 2} = {out[n // 2]}")


def bandwidth(series, read):
    """read(n) returns the array read; one figure per size."""
    for n in SIZES:
        check(series, read(n), n)
        seconds, reads = timed(lambda: read(n), SECONDS)
        emit(series=series, bytes=n, seconds=seconds, reads=reads)


def latency(series, call):
    """Returns the number of calls made, warm-up included."""
    seconds, calls = timed(call, LATENCY_SECONDS, warmup=200)
    emit(series=series, latency_us=seconds * 1e6, calls=calls)
    return 200 + calls


class Counter:
    """The proxied object of the latency part; importable on every rank."""

    def __init__(self):
        self.n = 0

    def add(self, k):
        self.n += k
        return self.n


def run_parc():
    import parc

    def main():
        for n in SIZES:
            p = parc.Proxy.create(np.ones, n, dtype=np.uint8, owner=1)
            if p.owner != 1 or parc.is_local(p):
                raise AssertionError(f"not a remote read: proxy owned by rank {p.owner}, "
                                     f"is_local {parc.is_local(p)}")
            check("parc proxy", p.resolve(), n)
            seconds, reads = timed(p.resolve, SECONDS)
            emit(series="parc proxy", bytes=n, seconds=seconds, reads=reads)
            del p  # lets the owner free its array before the next, larger one
        q = parc.Proxy.create(Counter, owner=1)
        calls = latency("parc proxy", lambda: q.add(1))
        if q.add(0) != calls:
            raise AssertionError(f"the counter does not hold the {calls} calls of q.add(1)")

    parc.run(main)


def run_mpi4py():
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    if comm.Get_size() != 2:
        sys.exit("bench_bandwidth.py mpi4py: needs 2 ranks")
    # Both ranks run the same phases in order; in each, a negative size (or None) from
    # rank 0 ends rank 1's loop, since only rank 0 knows how many reads a size gets.
    request = np.zeros(1, dtype=np.int64)
    if comm.Get_rank() == 1:
        owned = np.empty(0, dtype=np.uint8)
        while (n := comm.recv(source=0)) >= 0:
            if owned.size != n:  # the owner's object: an array of n bytes
                owned = np.ones(n, dtype=np.uint8)
            comm.send(owned, dest=0)
        data = np.ones(max(SIZES), dtype=np.uint8)
        while True:
            comm.Recv(request, source=0)
            if request[0] < 0:
                break
            comm.Send(data[: request[0]], dest=0)
        while (obj := comm.recv(source=0)) is not None:
            comm.send(obj, dest=0)
        return

    def pickle_read(n):
        comm.send(n, dest=1)
        return comm.recv(source=1)

    bandwidth("mpi4py pickle", pickle_read)
    comm.send(-1, dest=1)

    # Zeros: earlier, 4x smaller reads fill only the first quarter, so check() sees this
    # read's bytes.
    into = np.zeros(max(SIZES), dtype=np.uint8)
    views = {n: into[:n] for n in SIZES}  # no slicing inside the timed loop

    def buffer_read(n):
        request[0] = n
        comm.Send(request, dest=1)
        comm.Recv(views[n], source=1)
        return views[n]

    bandwidth("mpi4py buffer", buffer_read)
    request[0] = -1
    comm.Send(request, dest=1)

    def round_trip():
        comm.send(("add", 1), dest=1)
        return comm.recv(source=1)

    latency("mpi4py pickle", round_trip)
    comm.send(None, dest=1)


if __name__ == "__main__":
    modes = {"parc": run_parc, "mpi4py": run_mpi4py}
    if len(sys.argv) != 2 or sys.argv[1] not in modes:
        sys.exit("usage: bench_bandwidth.py parc|mpi4py")
    modes[sys.argv[1]]()
