"""Large payloads: numpy arrays (and other large buffers) as arguments and results.

Results' buffers of 64 KiB or more go to the manager straight from the array a task
returned, as tails of the result batch (docs/architecture.md): these tests would fail if
one went missing or out of place, or if a task could change a result still on its way
(a task that refills and returns the same array each call).
"""

import os
from pathlib import Path

import pytest

from conftest import MODES, app, report

LIBRARY = Path(os.environ.get("PARC_BUILD_DIR", "build")) / "tests" / "libparc_test_closures.so"

THRESHOLD = 64 * 1024
# Array sizes in bytes, around the threshold and far above it, with small ones between.
SIZES = [0, 8, 800, THRESHOLD - 8, THRESHOLD, THRESHOLD + 8, 200_000, 1 << 20, 3 << 20, 16]

HELPERS = f'''
import numpy as np

SIZES = {SIZES!r}


def expected(key, nbytes):
    return (np.arange(nbytes // 8, dtype=np.float64) * 3 + key) % 1000.0


@parc.closure
def make(key, nbytes):
    return expected(key, nbytes)


@parc.closure
def make_many(key):
    # Several buffers in one result, large and small.
    return {{"big": expected(key, 300_000), "small": expected(key, 40),
            "edge": expected(key + 1, {THRESHOLD}).astype(np.uint8),
            "raw": bytes(expected(key, 100_000).astype(np.uint8)),
            "key": key}}


_refilled = np.zeros(50_000)  # 400 kB, refilled by every call


@parc.closure
def refill(key):
    _refilled[:] = key
    return _refilled


_seen = set()


@parc.closure
def flaky_make(key, nbytes):
    if key % 3 == 0 and key not in _seen:
        _seen.add(key)
        raise RuntimeError(f"first attempt of {{key}}")
    return expected(key, nbytes)


@parc.closure
def shifted(a):
    return a + 1


@parc.closure
def echo(a):
    return a


def same(got, key, nbytes):
    want = expected(key, nbytes)
    return bool(got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want))
'''


def test_large_results_of_every_size(launch, mode):
    r = report(launch(app(r'''
        def main():
            keys = range(60)
            sizes = [SIZES[(k * 7) % len(SIZES)] for k in keys]
            out = {}
            with parc.TaskFarm() as farm:
                # Short tasks: batched, so large results sit between small ones in a reply.
                got = list(farm.map(make, keys, sizes))
                out["map"] = [k for k in keys if not same(got[k], k, sizes[k])]
                futures = [farm.submit(make, k, sizes[k]) for k in keys]
                out["submit"] = [k for k in keys if not same(futures[k].result(), k, sizes[k])]
                many = list(farm.map(make_many, range(12)))
                out["many"] = [k for k, m in enumerate(many) if not (
                    same(m["big"], k, 300_000) and same(m["small"], k, 40) and
                    np.array_equal(m["edge"], expected(k + 1, 65536).astype(np.uint8)) and
                    m["raw"] == bytes(expected(k, 100_000).astype(np.uint8)) and m["key"] == k)]
                # Results arrive writable, as views of the received message.
                result = farm.submit(make, 1, 1 << 20).result()
                result += 1
                out["writable"] = bool(np.array_equal(result, expected(1, 1 << 20) + 1))
            emit(out)


        parc.run(main)
    ''', helpers=HELPERS), **mode, timeout=180))
    assert r["map"] == [] and r["submit"] == [] and r["many"] == []
    assert r["writable"]


def test_a_task_refilling_its_result_cannot_change_one_on_its_way(launch, mode):
    # Each call returns the same array, refilled: every result must hold its own key, when
    # several tasks share a batch (later ones run before the reply goes) and across
    # batches (the next batch is already at the worker while a reply is sent). Separate
    # submits: a map's chunk pickles its results together, after its last call (as
    # multiprocessing.Pool's does), so there they would all be the last key.
    r = report(launch(app(r'''
        def main():
            with parc.TaskFarm() as farm:
                wrong = []
                for round in range(4):
                    keys = range(round * 150, round * 150 + 150)
                    futures = [farm.submit(refill, k) for k in keys]
                    for key, future in zip(keys, futures):
                        got = future.result()
                        if got.shape != (50_000,) or not (got == key).all():
                            wrong.append(key)
            emit({"wrong": wrong})


        parc.run(main)
    ''', helpers=HELPERS), **mode, timeout=180))
    assert r["wrong"] == []


@pytest.mark.parametrize("mode", [m for m in MODES if m.id in ("serial3", "np2", "np4")])
def test_large_results_survive_retries(launch, mode):
    r = report(launch(app(r'''
        def main():
            keys = range(30)
            sizes = [SIZES[(k * 3) % len(SIZES)] for k in keys]
            # A retried task may land on a worker that has not seen its key: up to one
            # failure per worker.
            with parc.TaskFarm(retries=parc.workers() + 1) as farm:
                got = list(farm.map(flaky_make, keys, sizes))
            emit({"wrong": [k for k in keys if not same(got[k], k, sizes[k])]})


        parc.run(main)
    ''', helpers=HELPERS), **mode, timeout=180))
    assert r["wrong"] == []


def test_large_arguments_and_results_together(launch, mode):
    r = report(launch(app(r'''
        def main():
            rng = np.random.default_rng(3)
            arrays = [rng.random(n // 8) for n in SIZES * 2]
            with parc.TaskFarm() as farm:
                shifted_back = list(farm.map(shifted, arrays))
                echoed = [farm.submit(echo, a).result() for a in arrays]
                # The argument as it was at submit, though changed at once.
                snapshot = np.full(1 << 17, 5.0)
                future = farm.submit(shifted, snapshot)
                snapshot[:] = -1
                kept = bool((future.result() == 6.0).all())
            emit({"shifted": [i for i, (a, b) in enumerate(zip(arrays, shifted_back))
                              if not np.array_equal(a + 1, b)],
                  "echoed": [i for i, (a, b) in enumerate(zip(arrays, echoed))
                             if not np.array_equal(a, b)],
                  "snapshot": kept})


        parc.run(main)
    ''', helpers=HELPERS), **mode, timeout=180))
    assert r["shifted"] == [] and r["echoed"] == [] and r["snapshot"]


@pytest.mark.parametrize("mode", [m for m in MODES if m.id in ("serial", "np2", "np4")])
def test_large_results_of_a_cpp_closure(launch, mode):
    if not LIBRARY.exists():
        pytest.fail(f"{LIBRARY} is missing: build the tests (make build)")
    r = report(launch(app(f'''
        import numpy as np
        parc.load_library({str(LIBRARY)!r})


        def main():
            scale = parc.cpp_closure("scale")
            counts = [n // 8 for n in {SIZES!r}]
            with parc.TaskFarm() as farm:
                got = list(farm.map(scale, [np.arange(n, dtype=np.float64) for n in counts],
                                    [2.0] * len(counts)))
            emit({{"wrong": [n for n, g in zip(counts, got)
                            if not np.array_equal(g, 2.0 * np.arange(n))]}})


        parc.run(main)
    '''), **mode, timeout=180))
    assert r["wrong"] == []
