"""Futures as arguments: a task that takes a parc.Future runs once it is done, with its
value; a failed one fails its dependents with a parc.DependencyError naming it.

Each app is a small script run as a real program: serially, with PARC_SERIAL=3 and under
mpiexec.mpich -n 2 / -n 4 (the `mode` fixture). Apps print their findings as one
`REPORT {json}` line.
"""

import re

import pytest

from conftest import SERIAL_MODES, app, is_mpi, report, without_mpi_leftovers, workers_of

CLOSURES = r'''
@parc.closure
def make(n):
    return list(range(n))


@parc.closure
def total(xs, scale=1):
    return sum(xs) * scale


@parc.closure
def add(a, b):
    return a + b


@parc.closure
def nap(x, seconds):
    time.sleep(seconds)
    return x


@parc.closure
def boom(x):
    raise ValueError(f"boom {x}")


@parc.closure
def flaky(path):
    # Fails on its first attempt, then returns how many attempts it took.
    with open(path, "a") as f:
        f.write("x")
    with open(path) as f:
        attempts = len(f.read())
    if attempts == 1:
        raise OSError("first attempt fails")
    return attempts


def describe(e):
    return {"type": type(e).__name__, "str": str(e),
            "dependency": isinstance(e, parc.DependencyError),
            "value_error": isinstance(e, ValueError),
            "timeout": isinstance(e, parc.TaskTimeout),
            "cancelled": isinstance(e, concurrent.futures.CancelledError),
            "task": getattr(e, "parc_task", None), "index": getattr(e, "parc_index", None),
            "cause": None if e.__cause__ is None else describe(e.__cause__)}


def outcome(future):
    try:
        error = future.exception()
    except concurrent.futures.CancelledError:
        return "cancelled"
    return describe(error) if error is not None else future.result()

'''


def test_values_reach_dependent_tasks(launch, mode):
    r = report(launch(app(CLOSURES + r'''
def main():
    with parc.TaskFarm() as farm, parc.TaskFarm() as other:
        a = farm.submit(make, 10)
        chain = farm.submit(total, a, scale=farm.submit(nap, 3, 0.2))
        twice = farm.submit(add, a, a)
        across = other.submit(total, farm.submit(make, 4))  # another farm's future
        # a chain of 20 links, each waiting on the one before
        link = farm.submit(nap, 0, 0.05)
        for _ in range(20):
            link = farm.submit(add, link, 1)
        done_first = farm.submit(make, 3)
        done_first.result()
        emit({
            "chain": chain.result(),
            "twice": twice.result(),
            "across": across.result(),
            "links": link.result(),
            "done_first": farm.submit(total, done_first).result(),
            "map": list(farm.map(total, [farm.submit(make, i) for i in range(30)])),
            "map_mixed": list(farm.map(add, [farm.submit(nap, i, 0.01) if i % 7 == 0 else i
                                             for i in range(50)], range(50))),
            "map_chunked": list(farm.map(total, [farm.submit(make, 3)] + [[i] for i in
                                                                       range(200)],
                                         chunksize=16)),
            "batch": [f.result() for f in farm.submit_batch(
                add, [(farm.submit(make, i), [i]) if i % 2 else ([i], [0])
                      for i in range(10)])],
        })


parc.run(main)
'''), **mode))
    assert r["chain"] == 45 * 3
    assert r["twice"] == list(range(10)) * 2
    assert r["across"] == 6
    assert r["links"] == 20
    assert r["done_first"] == 3
    assert r["map"] == [i * (i - 1) // 2 for i in range(30)]
    assert r["map_mixed"] == [2 * i for i in range(50)]
    assert r["map_chunked"] == [3] + list(range(200))
    assert r["batch"] == [list(range(i)) + [i] if i % 2 else [i, 0] for i in range(10)]


# The root failure, as its direct dependents and those further down the chain name it.
WHERE = re.compile(r"task (\d+) \(boom\(1\)\),? (?:which )?failed on rank (\d+) \(host .+, "
                   r"pid \d+\): ValueError: boom 1$")


def test_a_failed_dependency_fails_its_dependents_naming_it(launch, mode):
    r = report(launch(app(CLOSURES + r'''
def main():
    with parc.TaskFarm() as farm:
        failed = farm.submit(boom, 1)
        first = farm.submit(total, failed)
        second = farm.submit(add, 1, b=first)
        try:
            second.result()
            caught = None
        except ValueError as e:  # the root failure's type still catches it
            caught = describe(e)
        emit({"first": outcome(first), "second": caught,
              "root_task": failed.exception().parc_task,
              "root_is_itself": second.exception().parc_root is failed.exception(),
              "independent": farm.submit(add, 1, 2).result()})


parc.run(main)
'''), **mode))
    first, second = r["first"], r["second"]
    assert first["dependency"] and first["value_error"] and first["type"] == "DependencyError"
    assert first["str"].startswith("total(...) did not run: its argument 1 is the result of "), first
    found = WHERE.search(first["str"])
    assert found and int(found.group(1)) == r["root_task"], first["str"]
    assert first["cause"]["type"] == "ValueError" and first["cause"]["str"] == "boom 1"
    assert first["cause"]["task"] == r["root_task"]
    assert second["dependency"] and second["value_error"]
    assert second["str"].startswith(
        "add(...) did not run: its keyword argument 'b' is the result of total(...), which "
        "did not run because task "), second["str"]
    assert WHERE.search(second["str"]), second["str"]
    assert second["cause"]["str"] == first["str"]  # the chain survives
    assert second["cause"]["cause"]["type"] == "ValueError"
    assert r["root_is_itself"]
    assert r["independent"] == 3


def test_policies_cover_dependent_tasks(launch, mode, tmp_path):
    r = report(launch(app(CLOSURES + r'''
def main():
    with parc.TaskFarm(policy="fail_fast") as farm:
        failed = farm.submit(boom, 1)
        failed.exception()
        slow = farm.submit(nap, [1], 1.0)
        # fail_fast: the batch's failure (a dependency's) cancels its waiting tasks
        batch = farm.submit_batch(total, [(slow,), (failed,), (slow,)])
        # ... and a task failing on a worker cancels those waiting in its batch
        batch2 = farm.submit_batch(add, [(1, "x"), (slow, [2]), (slow, [3])])
        batches = [[outcome(f) for f in batch], [outcome(f) for f in batch2]]
    with parc.TaskFarm(policy="collect_all") as farm:
        futures = [farm.submit(boom, 1) if i in (2, 5) else farm.submit(make, i)
                   for i in range(8)]
        try:
            list(farm.map(total, futures))
            group = None
        except parc.ParallelException as e:
            group = {"members": [describe(m) for m in e.exceptions],
                     "results": {str(k): v for k, v in e.results.items()}}
    with parc.TaskFarm(retries=1) as farm:
        retried = farm.submit(add, farm.submit(flaky, sys.argv[1]), 10).result()
    with parc.TaskFarm(timeout=0.5) as farm:
        timed = outcome(farm.submit(total, farm.submit(nap, [1], 3.0)))
    emit({"batches": batches, "group": group, "retried": retried, "timed": timed})


parc.run(main)
'''), args=[tmp_path / "attempts"], **mode))
    first, second = r["batches"]
    assert first[1]["dependency"] and first[1]["cause"]["str"] == "boom 1"
    assert first[0] == first[2] == "cancelled"
    assert second[0]["type"] == "TypeError"
    if is_mpi(mode) and workers_of(mode) > 1:  # it fails while their dependency runs
        assert second[1:] == ["cancelled", "cancelled"]
    else:  # it may run after it, and a worker take them meanwhile (sent ahead)
        assert all(o in ("cancelled", [1, n]) for o, n in zip(second[1:], (2, 3))), second
    members = r["group"]["members"]
    assert [m["index"] for m in members] == [2, 5]
    assert all(m["dependency"] and m["value_error"] for m in members), members
    # what was not yielded before the failure was raised
    assert r["group"]["results"] == {str(i): i * (i - 1) // 2 for i in (3, 4, 6, 7)}
    assert r["retried"] == 12  # the dependency's second attempt returned 2
    timed = r["timed"]
    assert timed["dependency"] and timed["timeout"], timed
    assert timed["cause"]["type"] == "TaskTimeout"


def test_cancelling_waiting_tasks_and_their_dependencies(launch, mode):
    r = report(launch(app(CLOSURES + r'''
def main():
    with parc.TaskFarm() as farm:
        slow = farm.submit(nap, [1], 0.5)
        waiting = farm.submit(total, slow)
        behind = farm.submit(add, waiting, 1)
        cancelled_it = waiting.cancel()
        # a dependency cancelled before it started cancels its dependents
        blockers = [farm.submit(nap, 0, 0.5) for _ in range(parc.workers())]
        queued = farm.submit(make, 3)
        dependent = farm.submit(total, queued)
        queued_cancelled = queued.cancel()
        try:
            list(farm.map(total, [farm.submit(make, 2), queued]))
            mapped = None
        except Exception as e:
            mapped = describe(e.exceptions[0] if isinstance(e, parc.ParallelException) else e)
        late = farm.submit(total, farm.submit(nap, [2], 0.5))
        farm.shutdown(wait=True, cancel_futures=True)
        emit({"cancelled_it": cancelled_it, "waiting": outcome(waiting),
              "behind": outcome(behind), "slow": slow.result(),
              "queued_cancelled": queued_cancelled, "dependent": outcome(dependent),
              "mapped": mapped, "late": outcome(late),
              "blockers": [b.result() for b in blockers]})


parc.run(main)
'''), **mode))
    assert r["cancelled_it"] and r["waiting"] == "cancelled" and r["behind"] == "cancelled"
    assert r["slow"] == [1]
    if r["queued_cancelled"]:  # serially nothing has started before a wait
        assert r["dependent"] == "cancelled"
        assert r["mapped"]["cancelled"] and "is a future that was cancelled" in r["mapped"]["str"]
        assert r["mapped"]["index"] == 1
    else:
        assert r["dependent"] == 3
    assert r["late"] == "cancelled"  # shutdown(cancel_futures=True): it was waiting


def test_futures_that_cannot_be_arguments_say_so(launch):
    r = report(launch(app(CLOSURES + r'''
class Box:
    def size(self):
        return 3


def main():
    with parc.TaskFarm() as farm:
        a = farm.submit(make, 2)
        errors = []
        for call in (lambda: farm.submit(total, [a]),
                     lambda: farm.submit(total, parc.Proxy.create(Box, owner=1).async_.size())):
            try:
                call()
                errors.append(None)
            except TypeError as e:
                errors.append(str(e))
        emit({"errors": errors, "still": farm.submit(total, a).result()})


parc.run(main)
'''), ranks=2))
    nested, proxy = r["errors"]
    assert nested.startswith("parc: argument 1 of total (list) holds a parc.Future, which "
                             "cannot travel inside another object."), nested
    assert ".result()" in nested
    assert proxy.startswith("parc: argument 1 of total is the future of a proxy call"), proxy
    assert r["still"] == 1


# -- large results stay on the worker that made them -----------------------------------

KEPT = r'''
import resource
import numpy as np


@parc.closure
def make(megabytes, value=1.0):
    return np.full(megabytes * 131072, value)


@parc.closure
def total(a, b=None):
    return float(a.sum() + (0 if b is None else b.sum())), parc.rank()


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    keep = sys.argv[1] == "keep"
    with parc.TaskFarm(keep_results=keep) as farm:
        holders = range(1, parc.workers() + 1)
        baseline = [parc.live_objects(r) for r in holders] if keep else []
        before = peak_mb()
        f = farm.submit(make, 80)
        g = farm.submit(total, f)
        value, ran_on = g.result()
        grown = peak_mb() - before
        array = f.result()  # fetched on demand
        small = farm.submit(make, 0)  # under 1 MiB: comes back as it is
        mapped = list(farm.map(total, [farm.submit(make, 2, float(i)) for i in range(6)]))
        keyword = farm.submit(total, farm.submit(make, 2), b=farm.submit(make, 2, 2.0))
        report = {"value": value, "grown_mb": grown, "shape": array.shape[0],
                  "sum": float(array.sum()), "small": small.result().size,
                  "mapped": [v for v, _ in mapped], "keyword": keyword.result()[0]}
        del f, g, array, mapped, keyword
        unread = farm.submit(make, 8)  # kept, never read, alive when the run ends
        parc.wait([unread])
        if keep:  # every kept result freed once nothing names it, but the one still named
            deadline = time.monotonic() + 20
            live = lambda: sum(parc.live_objects(r) for r in holders) - sum(baseline)
            while live() != 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            report["freed"] = live() == 1
    emit(report)


parc.run(main)
'''


@pytest.mark.parametrize("ranks", [2, 3])
def test_a_large_result_never_passes_rank_0(launch, ranks):
    launch = without_mpi_leftovers(launch)  # a kept result is alive at the end
    # The 2 MB inputs of the map and the keyword call are kept too (the 80 MB one by default)
    kept = report(launch(app(KEPT), ranks=ranks, args=["keep"],
                         env={"PARC_KEEP_BYTES": "1000000"}))
    through = report(launch(app(KEPT), ranks=ranks, args=["through-rank-0"]))
    for r in (kept, through):
        assert r["value"] == 80 * 131072 and r["shape"] == 80 * 131072
        assert r["sum"] == 80 * 131072 and r["small"] == 0
        assert r["mapped"] == [2 * 131072 * i for i in range(6)]
        assert r["keyword"] == 3 * 2 * 131072
    # 80 MB made on a worker and used by another task: rank 0 never holds it...
    assert kept["grown_mb"] < 20, kept
    assert kept["freed"]
    # ...which it does when the result comes back through it
    assert through["grown_mb"] > 70, through


@pytest.mark.parametrize("mode", SERIAL_MODES)
def test_kept_results_serially(launch, mode):
    r = report(launch(app(KEPT), args=["keep"], env={"PARC_KEEP_BYTES": "1000000"}, **mode))
    assert r["value"] == r["sum"] == 80 * 131072
    assert r["mapped"] == [2 * 131072 * i for i in range(6)]
    assert r["keyword"] == 3 * 2 * 131072
    assert r["freed"]


def test_a_bad_keep_size_is_refused(launch):
    r = report(launch(app(CLOSURES + r'''
def main():
    try:
        parc.TaskFarm()
        refused = None
    except ValueError as e:
        refused = str(e)
    with parc.TaskFarm(keep_results=False) as farm:  # needs no size
        emit({"refused": refused, "works": farm.submit(total, [1, 2]).result()})


parc.run(main)
'''), env={"PARC_KEEP_BYTES": "1MB"}))
    assert r["refused"].startswith(
        "parc: PARC_KEEP_BYTES='1MB' is not a number of bytes; set it to an integer"), r
    assert r["works"] == 3
