"""parc.Proxy: objects owned by one rank, used from anywhere, released when unused.

Serially (the owners simulated in one process, still through pickle) and under
mpiexec.mpich at 2 and 3 ranks; every launch has a hard timeout (conftest).
"""

import pytest

from conftest import app, report, reports, without_mpi_leftovers

MODES = [
    pytest.param(dict(), id="serial"),
    pytest.param(dict(serial=3), id="serial3"),
    pytest.param(dict(ranks=2), id="np2"),
    pytest.param(dict(ranks=3), id="np3"),
]


@pytest.fixture(params=MODES)
def mode(request):
    return request.param


@pytest.fixture
def launch(launch):
    """Every run here also checks that MPI finalized with nothing left over, after
    failed calls, released objects and refused reads too."""
    return without_mpi_leftovers(launch)


HELPERS = r'''
import gc
import pickle
import numpy as np


class Counter:
    def __init__(self, start=0):
        self.value = start
        self.items = {}

    def add(self, k):
        self.value += k
        return self.value

    def where(self):
        return parc.rank()

    def item(self, i):
        return [1, 2, 3][i]

    def keep(self, proxy):
        self.kept = proxy
        return proxy.add(1)

    def through_kept(self, k):
        return self.kept.add(k)

    def __getitem__(self, key):
        return self.items[key]

    def __setitem__(self, key, value):
        self.items[key] = value

    def __len__(self):
        return len(self.items)

    def __contains__(self, key):
        return key in self.items


LOCK = threading.Lock()


class Locked:  # of __main__, so it travels by value, with LOCK
    def get(self):
        with LOCK:
            return 1


class Refuses:
    def __init__(self, why):
        raise KeyError(why)


def bump(counter, k):
    return counter.add(k), parc.rank()


def make_on(owner, start):
    return parc.Proxy.create(Counter, start, owner=owner)


def settle(owner, expected, seconds=10):
    """live_objects(owner) once Python has let go of what it no longer uses."""
    gc.collect()
    deadline = time.monotonic() + seconds
    while True:
        live = parc.live_objects(owner)
        if live == expected or time.monotonic() > deadline:
            return live
        gc.collect()
        time.sleep(0.05)
'''


def test_done_when_scenario(launch, mode):
    r = report(launch(app(r'''
        def main():
            last = parc.workers()
            before = parc.live_objects(last)
            c = parc.Proxy.create(Counter, 10, owner=last)
            out = {"owner": c.owner, "local": parc.is_local(c), "where": c.where(),
                   "add": c.add(5), "value": c.value}
            c.value = 100
            out["set"] = c.value
            out["resolved"] = c.resolve().value
            c["k"] = "v"
            out["items"] = [c["k"], len(c), "k" in c, "nope" in c]
            with parc.TaskFarm() as farm:
                out["tasks"] = sorted(farm.map(bump, [c] * 6, [1] * 6))
                made = farm.submit(make_on, last, 7).result()  # a proxy returned by a task
            out["made"] = made.add(1)
            out["after_tasks"] = c.value
            try:
                c.item(5)
            except IndexError as e:
                out["error"] = [type(e).__name__, e.parc_rank, e.__notes__[0]]
            f = c.async_.add(1)
            out["async"] = [f.result(timeout=30), c.async_.value.result(), type(f).__name__]
            # a proxy to a proxy: the object on `last` keeps a proxy to one on rank 0
            inner = parc.Proxy.create(Counter, 1000, owner=0)
            out["kept"] = [c.keep(inner), c.through_kept(10), inner.value]
            del inner
            out["live_mid"] = parc.live_objects(last) - before
            many = [parc.Proxy.create(Counter, i, owner=last) for i in range(200)]
            out["with_200"] = parc.live_objects(last) - before
            out["sum_200"] = sum(p.value for p in many[:20])
            del many, made, f
            out["dropped_200"] = settle(last, before + 1) - before
            del c
            out["dropped_all"] = settle(last, before) - before
            out["rank0_left"] = settle(0, 0)
            emit(out)


        parc.run(main)
    ''', helpers=HELPERS), **mode))
    last = mode.get("ranks", 2) - 1 if mode.get("ranks") else mode.get("serial", 1)
    assert r["owner"] == last and r["local"] is False
    if mode.get("ranks"):
        assert r["where"] == last  # the method ran on the owner's rank
    assert (r["add"], r["value"], r["set"], r["resolved"]) == (15, 15, 100, 100)
    assert r["items"] == ["v", 1, True, False]
    assert [t[0] for t in r["tasks"]] == list(range(101, 107))  # six adds at the owner
    assert r["made"] == 8 and r["after_tasks"] == 106
    assert r["error"][0] == "IndexError" and r["error"][1] == last
    assert f"rank {last}" in r["error"][2] and "proxy call: Counter.item(5)" in r["error"][2]
    assert r["async"] == [107, 107, "Future"]
    assert r["kept"] == [1001, 1011, 1011]
    assert r["with_200"] == r["live_mid"] + 200
    assert r["sum_200"] == sum(range(20))
    assert r["dropped_200"] == 1  # c itself
    assert r["dropped_all"] == 0
    assert r["rank0_left"] == 0  # inner went once c's object (which kept it) went


def test_numpy_reads_are_fresh_copies(launch, mode):
    r = report(launch(app(r'''
        def main():
            last = parc.workers()
            a = parc.Proxy.create(np.arange, 24, dtype=np.float64, owner=last)
            m = parc.Proxy.create(lambda: np.arange(12, dtype=np.int32).reshape(4, 3), owner=last)
            s = parc.Proxy.create(np.zeros, 3, dtype=[("x", "<i4"), ("y", "<f8")], owner=last)
            z = parc.Proxy.create(np.float32, 2.5, owner=last)
            whole = a.resolve()
            whole[0] = -1  # a copy: the owner's array does not change
            f = m.async_.resolve()
            rows = m.async_[1:3]
            out = {
                "whole": whole.tolist(), "again": a.resolve()[:3].tolist(),
                "dtype": str(whole.dtype), "writeable": bool(whole.flags.writeable),
                "matrix": f.result().tolist(), "rows": rows.result().tolist(),
                "slice": m[1:3].tolist(), "step": m[::2].tolist(), "cell": int(m[2, 1]),
                "empty": m[3:1].shape, "structured": s.resolve().dtype.names,
                "scalar": float(z.resolve()), "len": len(a), "sum": float(a.sum()),
            }
            emit(out)


        parc.run(main)
    ''', helpers=HELPERS), **mode))
    assert r["whole"] == [-1.0] + [float(i) for i in range(1, 24)]
    assert r["again"] == [0.0, 1.0, 2.0]
    assert r["dtype"] == "float64" and r["writeable"] is True
    assert r["matrix"] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]]
    assert r["rows"] == r["slice"] == [[3, 4, 5], [6, 7, 8]]
    assert r["step"] == [[0, 1, 2], [6, 7, 8]]
    assert r["cell"] == 7 and r["empty"] == [0, 3]
    assert r["structured"] == ["x", "y"]
    assert r["scalar"] == 2.5 and r["len"] == 24 and r["sum"] == sum(range(24))


def test_share_in_spmd_region(launch, mode):
    r = report(launch(app(r'''
        def kernel(ctx):
            counter = ctx.share(Counter(0) if ctx.rank == 0 else None, root=0)
            block = ctx.share(np.full(4, ctx.rank, dtype=np.int64), root=ctx.size - 1)
            counter.add(ctx.rank + 1)
            ctx.barrier()
            return {"total": counter.value, "block": block.resolve().tolist(),
                    "local": parc.is_local(counter), "owner": counter.owner,
                    "proxy": counter}


        def main():
            out = parc.Spmd().run(kernel)
            total = out[0]["proxy"].value  # still alive after the region: the manager holds it
            owner = out[0]["owner"]
            shown = [{k: v for k, v in o.items() if k != "proxy"} for o in out]
            del out
            emit({"out": shown, "after": total, "owner": owner, "left": settle(owner, 0)})


        parc.run(main)
    ''', helpers=HELPERS), **mode))
    n = mode.get("ranks", 0) - 1 if mode.get("ranks") else mode.get("serial", 1)
    total = sum(range(1, n + 1))
    assert [o["total"] for o in r["out"]] == [total] * n
    assert [o["block"] for o in r["out"]] == [[n - 1] * 4] * n
    # region rank 0 owns the counter (serially too: its simulated rank), the others read it
    assert [o["local"] for o in r["out"]] == [True] + [False] * (n - 1)
    assert len({o["owner"] for o in r["out"]}) == 1 and r["owner"] >= 1
    assert r["after"] == total
    assert r["left"] == 0  # the region's proxies are gone: the owner dropped the counter


def test_released_and_bad_input(launch, mode):
    r = report(launch(app(r'''
        def main():
            last = parc.workers()
            out = {}
            for label, call in [
                ("owner", lambda: parc.Proxy.create(Counter, owner=last + 1)),
                ("owner_type", lambda: parc.Proxy.create(Counter, owner="1")),
                ("factory", lambda: parc.Proxy.create(Refuses, "no way", owner=last)),
                ("pickle", lambda: parc.Proxy.create(Counter, threading.Lock(), owner=last)),
                ("factory_pickle", lambda: parc.Proxy.create(Locked, owner=last)),
                ("attribute", lambda: parc.Proxy.create(Counter, owner=last).missing),
                ("reserved", lambda: setattr(parc.Proxy.create(Counter, owner=last), "owner", 3)),
                ("is_local", lambda: parc.is_local(3)),
                ("iterate", lambda: list(parc.Proxy.create(list, [1, 2], owner=last))),
            ]:
                try:
                    call()
                    out[label] = None
                except Exception as e:
                    out[label] = [type(e).__name__, str(e)]
            # A pickle loaded after every proxy (and the pickle's one load) let go.
            p = parc.Proxy.create(Counter, 5, owner=last)
            data = pickle.dumps(p)
            first = pickle.loads(data)
            del p, first
            settle(last, 0)
            late = pickle.loads(data)
            try:
                late.add(1)
                out["late"] = None
            except Exception as e:
                out["late"] = [type(e).__name__, str(e)]
            emit(out)


        parc.run(main)
    ''', helpers=HELPERS), **mode))
    assert r["owner"][0] == "UsageError" and "does not exist" in r["owner"][1]
    assert r["owner_type"][0] == "TypeError"
    assert r["factory"][0] == "KeyError" and "no way" in r["factory"][1]
    assert r["pickle"][0] == "TypeError" and "cannot be pickled" in r["pickle"][1]
    assert r["factory_pickle"][0] == "TypeError"
    assert "Locked cannot be sent to rank" in r["factory_pickle"][1]
    assert r["attribute"][0] == "AttributeError" and "missing" in r["attribute"][1]
    assert r["reserved"][0] == "AttributeError"
    assert r["is_local"][0] == "TypeError"
    assert r["iterate"][0] == "TypeError" and "p.resolve()" in r["iterate"][1]
    assert r["late"][0] == "ProxyError" and "was released" in r["late"][1]


@pytest.mark.parametrize("ranks", [3])
def test_owner_answers_while_busy(launch, ranks):
    """One-sided progress: rank 2 runs pure-Python busy work (holding the GIL) or waits
    in a collective, and calls to its objects complete meanwhile."""
    result = launch(app(r'''
        def busy(ctx, seconds, owner):
            if parc.rank() == owner:
                end = time.monotonic() + seconds
                x = 0
                while time.monotonic() < end:
                    x += 1  # pure Python: the GIL changes hands only at switch intervals
            ctx.barrier()  # the other rank waits here: a collective
            return parc.rank()


        def main():
            owner = 2
            c = parc.Proxy.create(Counter, owner=owner)
            a = parc.Proxy.create(np.ones, 1 << 20, owner=owner)
            for target in (owner, 1):  # the owner busy; then the owner waiting in barrier
                busy_owner = owner if target == owner else 1
                run = parc.Spmd(ranks=[1, 2]).submit(busy, 3.0, busy_owner)
                time.sleep(0.5)  # the region is running by now
                started = time.monotonic()
                calls = [c.add(1) for _ in range(5)]
                call_seconds = time.monotonic() - started
                started = time.monotonic()
                total = float(a.resolve().sum())
                read_seconds = time.monotonic() - started
                emit({"calls": calls, "call_seconds": call_seconds, "total": total,
                      "read_seconds": read_seconds, "region_done": run.done(),
                      "ranks": run.result()}, tag="STEP")


        parc.run(main)
    ''', helpers=HELPERS), ranks=ranks)
    assert result.returncode == 0, result.output
    steps = reports(result, "STEP")
    assert len(steps) == 2, result.output
    for step, calls in zip(steps, ([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])):
        assert step["calls"] == calls
        assert step["total"] == float(1 << 20)
        # Both answered while the region still ran (it lasts 3 s after a 0.5 s head start).
        assert step["region_done"] is False, step
        assert step["ranks"] == [1, 2]


def test_many_proxies_leave_nothing_behind(launch):
    """10^5 proxies made and dropped (pickled copies, and proxies made by tasks on every
    worker): the owners keep nothing afterwards."""
    r = report(launch(app(r'''
        def copies(p, n):
            return [pickle.loads(pickle.dumps(p)) for _ in range(n)]


        def main():
            last = parc.workers()
            base = [parc.live_objects(o) for o in range(last + 1)]
            targets = [parc.Proxy.create(Counter, i, owner=i % (last + 1)) for i in range(100)]
            made = []
            for p in targets:
                made.extend(copies(p, 995))
            with parc.TaskFarm() as farm:
                made.extend(farm.map(make_on, [i % (last + 1) for i in range(500)], range(500)))
            total = len(made)
            peak = sum(parc.live_objects(o) for o in range(last + 1)) - sum(base)
            sample = made[12345].value
            del made, targets, p
            left = [settle(o, base[o]) - base[o] for o in range(last + 1)]
            emit({"total": total, "peak": peak, "sample": sample, "left": left})


        parc.run(main)
    ''', helpers=HELPERS), ranks=3, timeout=300))
    assert r["total"] == 100_000
    assert r["peak"] == 600
    assert r["sample"] == 12345 // 995  # the Counter(i) that proxy copies
    assert r["left"] == [0, 0, 0]


def test_long_idle_workers_wake_for_tasks_proxies_and_shutdown(launch):
    # Idle for over a second, a worker's main thread parks and its proxies' progress
    # thread watches for its messages: a task, a proxy request and the shutdown must all
    # still reach it.
    r = report(launch(app(r'''
        import time


        @parc.closure
        def where(x):
            return parc.rank()


        def main():
            with parc.TaskFarm() as farm:
                first = sorted(set(farm.map(where, range(20))))
                time.sleep(1.5)
                again = sorted(set(farm.map(where, range(20))))
                time.sleep(1.5)
                c = parc.Proxy.create(Counter, 5, owner=2)
                added = [c.add(1), c.add(2)]
                owner = c.where()
                time.sleep(1.5)
                after_idle = c.add(3)
            emit({"first": first, "again": again, "added": added, "owner": owner,
                  "after_idle": after_idle})


        parc.run(main)
    ''', helpers=HELPERS), ranks=3, timeout=60))
    assert r["again"] and set(r["again"]) <= {1, 2}
    assert r["added"] == [6, 8] and r["owner"] == 2 and r["after_idle"] == 11
