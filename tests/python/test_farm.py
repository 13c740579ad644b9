"""parc.TaskFarm as a concurrent.futures.Executor, end to end.

Each app is a small script run as a real program: serially, with PARC_SERIAL=3 and under
mpiexec.mpich -n 2 / -n 4 where the behaviour depends on the transport (the `mode`
fixture), in fewer modes where it does not. Apps print their findings as one
`REPORT {json}` line.
"""

import textwrap

import pytest

from conftest import MODES, app, is_mpi, report, workers_of



ONE_WORKER = [pytest.param(dict(), id="serial"), pytest.param(dict(ranks=2), id="np2")]




# -- results ---------------------------------------------------------------------------------

def test_map_submit_and_submit_batch_results(launch, mode):
    r = report(launch(app(r'''
        @parc.closure
        def square(x):
            return x * x


        @parc.closure
        def combine(a, b, c="-"):
            return f"{a}{c}{b}"


        def main():
            with parc.TaskFarm() as farm:
                lazy = farm.map(square, range(100))
                future = farm.submit(combine, 1, 2, c="+")
                futures = farm.submit_batch(combine, [(i, i + 1) for i in range(10)])
                emit({
                    "executor": isinstance(farm, concurrent.futures.Executor),
                    "lazy": not isinstance(lazy, list),
                    "map": list(lazy),
                    "submit": future.result(),
                    "future_types": [isinstance(future, parc.Future),
                                     isinstance(future, concurrent.futures.Future)],
                    "batch": [f.result() for f in futures],
                    "empty_map": list(farm.map(square, [])),
                    "empty_batch": farm.submit_batch(combine, []),
                    "bools": list(farm.map(square, [True, False])),
                    "big": farm.submit(square, 10 ** 30).result() == 10 ** 60,
                })


        parc.run(main)
    '''), **mode))
    assert r["executor"] and r["lazy"]
    assert r["map"] == [x * x for x in range(100)]
    assert r["submit"] == "1+2"
    assert r["future_types"] == [True, True]
    assert r["batch"] == [f"{i}-{i + 1}" for i in range(10)]
    assert r["empty_map"] == [] and r["empty_batch"] == []
    assert r["bools"] == [1, 0]
    assert r["big"]


def test_tasks_run_on_the_workers_in_parallel(launch):
    r = report(launch(app(r'''
        @parc.closure
        def nap(x):
            time.sleep(0.15)
            return os.getpid()


        def main():
            with parc.TaskFarm() as farm:
                start = time.monotonic()
                pids = list(farm.map(nap, range(12)))
                elapsed = time.monotonic() - start
            emit({"pids": pids, "elapsed": elapsed, "manager": os.getpid()})


        parc.run(main)
    '''), ranks=4))
    assert len(set(r["pids"])) == 3, "every one of the 3 workers gets tasks"
    assert r["manager"] not in r["pids"]
    assert r["elapsed"] < 12 * 0.15 * 0.75, "12 naps of 0.15 s on 3 workers ran serially"


def test_a_long_task_keeps_no_other_task_waiting(launch):
    # Tasks are sent ahead to busy workers (no round trip between tasks); the one sent
    # ahead to the worker stuck in the long task is taken back for a worker that runs out.
    r = report(launch(app(r'''
        @parc.closure
        def nap(seconds):
            time.sleep(seconds)
            return os.getpid()


        def main():
            with parc.TaskFarm() as farm:
                list(farm.map(nap, [0.02] * 6))  # the farm knows these tasks' length
                pids = list(farm.map(nap, [1.5] + [0.02] * 12))
            emit({"pids": pids})


        parc.run(main)
    '''), ranks=3))
    pids = r["pids"]
    assert pids[0] not in pids[1:], "a short task waited behind the long one"
    assert len(set(pids)) == 2


def test_map_several_iterables_and_chunksize(launch, mode):
    r = report(launch(app(r'''
        @parc.closure
        def triple(a, b, c):
            return [a, b, c]


        @parc.closure
        def add(a, b):
            return a + b


        def main():
            out = {}
            with parc.TaskFarm() as farm:
                out["zip"] = list(farm.map(triple, range(10), "abcdefg", [0.5] * 20))
                out["chunks"] = {k: list(farm.map(add, range(50), range(100, 150), chunksize=k))
                                 for k in (1, 7, 50, 1000)}
                out["chunk_gen"] = list(farm.map(add, (i for i in range(23)), range(23),
                                                 chunksize=4))
                for bad in (0, -2, 1.5):
                    try:
                        farm.map(add, [1], [2], chunksize=bad)
                    except (ValueError, TypeError) as e:
                        out[f"bad {bad}"] = [type(e).__name__, str(e)]
                try:
                    farm.map(add)
                except TypeError as e:
                    out["no iterables"] = str(e)
            emit(out)


        parc.run(main)
    '''), **mode))
    assert r["zip"] == [[i, "abcdefg"[i], 0.5] for i in range(7)]
    for k, values in r["chunks"].items():
        assert values == [2 * i + 100 for i in range(50)], k
    assert r["chunk_gen"] == [2 * i for i in range(23)]
    for bad in ("0", "-2", "1.5"):
        kind, message = r[f"bad {bad}"]
        assert kind == "ValueError" and "chunksize" in message, (bad, message)
    assert "iterable" in r["no iterables"]


CHUNK_FAILURES = r'''
@parc.closure
def bad(x):
    if x in (10, 12, 19):
        raise ValueError(f"bad {x}")
    return x


def main():
    out = {}
    with parc.TaskFarm(policy=sys.argv[1]) as farm:
        got = []
        try:
            for value in farm.map(bad, range(20), chunksize=7):
                got.append(value)
        except parc.ParallelException as group:
            out["members"] = [[e.parc_index, str(e), e.__notes__[0]] for e in group.exceptions]
            out["message"] = group.message
        out["got"] = got
        out["after"] = list(farm.map(bad, range(5), chunksize=2))  # the farm goes on
    emit(out)


parc.run(main)
'''


@pytest.mark.parametrize("mode", MODES)
def test_chunksize_failures_name_their_inputs(launch, mode):
    """With chunksize, each failed input is its own member (index, call, note), collect_all
    keeps every failure of a chunk, and the inputs before the first failure are yielded."""
    r = report(launch(app(CHUNK_FAILURES), args=["collect_all"], **mode))
    assert [[i, s] for i, s, _ in r["members"]] == [[10, "bad 10"], [12, "bad 12"],
                                                   [19, "bad 19"]]
    assert r["members"][0][2].endswith(": bad(10), input #10"), r["members"][0][2]
    assert r["members"][2][2].endswith(": bad(19), input #19"), r["members"][2][2]
    assert r["message"] == "bad: 3 of 20 inputs failed"
    assert r["got"] == list(range(10))
    assert r["after"] == list(range(5))


@pytest.mark.parametrize("mode", ONE_WORKER)
def test_chunksize_fail_fast_stops_at_the_first_failure(launch, mode):
    r = report(launch(app(CHUNK_FAILURES), args=["fail_fast"], **mode))
    indexes = [i for i, _, _ in r["members"]]
    # The chunk of input 10 stops there (12 never runs); 19's chunk may have run.
    assert indexes in ([10], [10, 19]), r["members"]
    assert r["members"][0][2].endswith(": bad(10), input #10"), r["members"][0][2]
    assert r["got"] == list(range(10)), r["got"]  # every input before the failure
    assert r["after"] == list(range(5))


# Quick inputs, three of which fail: map and submit_batch send them in chunks.
BAD_INPUTS = r'''
FAILING = (700, 705, 1900)


@parc.closure
def bad(x):
    if x in FAILING:
        raise ValueError(f"bad {x}")
    return 2 * x
'''

AUTO_FAILURES = BAD_INPUTS + r'''

def main():
    out = {}
    with parc.TaskFarm(policy=sys.argv[1]) as farm:
        # Measures the function, so that the next map is chunked from its first inputs.
        assert list(farm.map(bad, range(3000, 6000))) == [2 * x for x in range(3000, 6000)]
        got = []
        try:
            for value in farm.map(bad, range(2000)):
                got.append(value)
        except parc.ParallelException as group:
            out["members"] = [[e.parc_index, str(e), e.__notes__[0]] for e in group.exceptions]
            out["message"] = group.message
            out["results"] = sorted(getattr(group, "results", {}).items())
        out["got"] = got
        out["after"] = list(farm.map(bad, range(5)))  # the farm goes on
    emit(out)


parc.run(main)
'''


@pytest.mark.parametrize("mode", MODES)
def test_batched_map_failures_keep_every_input_and_result(launch, mode):
    """Short tasks travel in chunks of inputs; failures are still per input, and under
    collect_all every other input's result is reachable, those after a failure in the same
    chunk included."""
    r = report(launch(app(AUTO_FAILURES), args=["collect_all"], **mode))
    assert [[i, s] for i, s, _ in r["members"]] == [[700, "bad 700"], [705, "bad 705"],
                                                   [1900, "bad 1900"]]
    assert r["members"][0][2].endswith(": bad(700), input #700"), r["members"][0][2]
    assert r["members"][2][2].endswith(": bad(1900), input #1900"), r["members"][2][2]
    assert r["message"] == "bad: 3 of 2000 tasks failed"
    assert r["got"] == [2 * x for x in range(700)]
    assert r["results"] == [[x, 2 * x] for x in range(701, 2000) if x not in (705, 1900)]
    assert r["after"] == [0, 2, 4, 6, 8]


@pytest.mark.parametrize("mode", ONE_WORKER + [pytest.param(dict(ranks=3), id="np3")])
def test_batched_map_fail_fast_stops_at_the_first_failure(launch, mode):
    r = report(launch(app(AUTO_FAILURES), args=["fail_fast"], **mode))
    indexes = [i for i, _, _ in r["members"]]
    # 700's chunk stops there (705 never runs); 1900's chunk may have run.
    assert indexes in ([700], [700, 1900]), r["members"]
    assert r["members"][0][2].endswith(": bad(700), input #700"), r["members"][0][2]
    assert r["got"] == [2 * x for x in range(700)]
    assert r["after"] == [0, 2, 4, 6, 8]


BATCH_CHUNKS = BAD_INPUTS + r'''

@parc.closure
def slow(x):
    time.sleep(0.02)
    return x


def outcome(f):
    if f.cancelled():
        return "cancelled"
    error = f.exception()
    return [error.parc_index, str(error), error.__notes__[0]] if error else f.result()


def main():
    out = {}
    with parc.TaskFarm(policy=sys.argv[1]) as farm:
        list(farm.map(bad, range(3000, 6000)))  # measured: the batch is chunked at once
        futures = farm.submit_batch(bad, [(x,) for x in range(2000)])
        concurrent.futures.wait(futures)
        out["outcomes"] = [outcome(f) for f in futures]
        # The last inputs of a batch of slow tasks wait on the manager: cancelled for sure.
        waiting = farm.submit_batch(slow, [(x,) for x in range(40)])
        out["cancelled_last"] = waiting[-1].cancel()
        out["slow"] = [outcome(f) for f in waiting]
        later = farm.submit_batch(slow, [(x,) for x in range(40)])
    farm.shutdown(cancel_futures=True)  # after the with block's wait: all done already
    out["later"] = sum(1 for f in later if f.done())
    with parc.TaskFarm() as farm:
        pending = farm.submit_batch(slow, [(x,) for x in range(200)])
        farm.shutdown(wait=True, cancel_futures=True)
        out["pending"] = [outcome(f) for f in pending]
    emit(out)


parc.run(main)
'''


@pytest.mark.parametrize("mode", MODES)
def test_batch_in_chunks_keeps_per_input_outcomes_and_cancels(launch, mode):
    r = report(launch(app(BATCH_CHUNKS), args=["collect_all"], **mode))
    outcomes = r["outcomes"]
    for x in range(2000):
        if x in (700, 705, 1900):
            index, message, note = outcomes[x]
            assert (index, message) == (x, f"bad {x}")
            assert note.endswith(f": bad({x}), input #{x}"), note
        else:
            assert outcomes[x] == 2 * x, (x, outcomes[x])
    assert r["cancelled_last"] is True
    assert r["slow"] == list(range(39)) + ["cancelled"]
    assert r["later"] == 40
    pending = r["pending"]
    assert all(o == "cancelled" or o == x for x, o in enumerate(pending)), pending
    assert "cancelled" in pending and pending[0] == 0


@pytest.mark.parametrize("mode", ONE_WORKER + [pytest.param(dict(ranks=3), id="np3")])
def test_batch_in_chunks_fail_fast(launch, mode):
    r = report(launch(app(BATCH_CHUNKS), args=["fail_fast"], **mode))
    outcomes = r["outcomes"]
    assert outcomes[700][:2] == [700, "bad 700"]
    assert outcomes[:700] == [2 * x for x in range(700)] or "cancelled" in outcomes[:700]
    after = outcomes[701:]
    assert "cancelled" in after  # the rest of the batch that had not started
    assert all(o == "cancelled" or o == 2 * x or (isinstance(o, list) and o[0] == x)
               for x, o in enumerate(after, 701)), after


@pytest.mark.parametrize("mode", ONE_WORKER)
def test_maps_and_submits_interleaved_on_one_farm(launch, mode):
    """The farm numbers the tasks of all its users: a map's results stay in input order
    when another map or a submit takes numbers between its refills (this used to hang)."""
    r = report(launch(app(r'''
        @parc.closure
        def ident(x):
            return x


        def main():
            n = 10_000
            with parc.TaskFarm() as farm:
                streamed = farm.map(ident, range(n))
                first = next(streamed)
                lone = farm.submit(ident, -1).result()
                rest = list(streamed)
                pairs = list(zip(farm.map(ident, range(n)), farm.map(ident, range(n, 2 * n))))
            emit({"first": first, "lone": lone, "rest_ok": rest == list(range(1, n)),
                  "pairs_ok": pairs == [(i, n + i) for i in range(n)]})


        parc.run(main)
    '''), timeout=240, **mode))
    assert r == {"first": 0, "lone": -1, "rest_ok": True, "pairs_ok": True}


def test_map_streams_an_unbounded_generator(launch, mode):
    r = report(launch(app(r'''
        @parc.closure
        def add(a, b):
            return a + b


        pulled = 0


        def naturals():  # unbounded: map must not materialize its input
            global pulled
            for i in itertools.count():
                pulled = i + 1
                yield i


        def main():
            n = 200_000
            with parc.TaskFarm() as farm:
                results = farm.map(add, naturals(), range(n))
                pulled_at_call = pulled
                first = next(results)
                pulled_at_first = pulled
                total = first + sum(results)
            emit({"at_call": pulled_at_call, "at_first": pulled_at_first,
                  "total": total, "expected": n * (n - 1), "pulled": pulled})


        parc.run(main)
    '''), **mode))
    assert r["total"] == r["expected"]
    assert r["at_first"] < 20_000, "map read far ahead of its consumer"
    assert r["at_call"] < 20_000
    assert r["pulled"] >= 200_000


def test_an_input_iterator_that_raises_stops_the_map(launch):
    r = report(launch(app(r'''
        @parc.closure
        def ident(x):
            return x


        def broken():
            yield from range(5)
            raise RuntimeError("the input broke")


        def main():
            got = []
            with parc.TaskFarm() as farm:
                try:
                    for value in farm.map(ident, broken()):
                        got.append(value)
                except RuntimeError as e:
                    error = [type(e).__name__, str(e)]
                after = farm.submit(ident, 9).result()
            emit({"error": error, "got": got, "after": after})


        parc.run(main)
    ''')))
    assert r["error"] == ["RuntimeError", "the input broke"]
    assert r["got"] == list(range(len(r["got"])))
    assert r["after"] == 9


NUMPY = r'''
import numpy as np


@parc.closure
def echo(a):
    return a


@parc.closure
def describe(a):
    return [a.dtype.str, list(a.shape), float(np.abs(a).sum()) if a.dtype.kind in "biufc" else 0]


def main():
    rng = np.random.default_rng(7)
    arrays = {
        "empty": np.zeros(0),
        "int8": np.arange(-5, 7, dtype=np.int8),
        "float32_2d": rng.random((100, 30)).astype(np.float32),
        "fortran": np.asfortranarray(rng.random((64, 48))),
        "strided": rng.integers(0, 1000, (8, 9, 10)).astype(np.int32)[:, ::2, 1:],
        "complex": np.array([1 + 2j, -3j]),
        "bool": np.array([[True, False], [False, True]]),
        "unicode": np.array(["ab", "c", "def"]),
        "records": np.array([(1, 2.5)], dtype=[("a", "i4"), ("b", "f8")]),
        "1MiB": rng.random(128 * 1024),
        "16MiB": rng.random(2 * 1024 * 1024),
        "16MiB_uint8_3d": rng.integers(0, 255, (256, 256, 256), dtype=np.uint8),
    }
    out = {}
    with parc.TaskFarm() as farm:
        for name, a in arrays.items():
            b = farm.submit(echo, a).result()
            out[name] = {"dtype": b.dtype == a.dtype, "shape": b.shape == a.shape,
                         "equal": bool(np.array_equal(a, b)), "nbytes": a.nbytes}
        echoed = list(farm.map(echo, [arrays["1MiB"], arrays["int8"], arrays["16MiB"]]))
        out["map"] = [bool(np.array_equal(x, y)) for x, y in
                      zip(echoed, [arrays["1MiB"], arrays["int8"], arrays["16MiB"]])]
        out["inside"] = farm.submit(describe, arrays["strided"]).result()
        out["expected_inside"] = [arrays["strided"].dtype.str, list(arrays["strided"].shape),
                                  float(np.abs(arrays["strided"]).sum())]
        out["nested"] = farm.submit(echo, {"k": [arrays["int8"], (arrays["bool"],)]}).result()
        out["nested"] = [out["nested"]["k"][0].tolist(), out["nested"]["k"][1][0].tolist()]
        # As with pickle: a task sees its argument as it was at submit, even when the
        # caller changes it while the (large, uncopied on the wire) send is in flight.
        snapshot = np.ones(1 << 18)
        futures = [farm.submit(describe, snapshot) for _ in range(6)]
        snapshot[:] = 0
        out["snapshot"] = [f.result()[2] for f in futures]
    emit(out)


parc.run(main)
'''


def test_numpy_arrays_round_trip(launch, mode):
    r = report(launch(app(NUMPY), **mode))
    for name in ("empty", "int8", "float32_2d", "fortran", "strided", "complex", "bool",
                 "unicode", "records", "1MiB", "16MiB", "16MiB_uint8_3d"):
        assert r[name]["dtype"] and r[name]["shape"] and r[name]["equal"], (name, r[name])
    assert r["16MiB"]["nbytes"] == 16 * 1024 * 1024
    assert r["16MiB_uint8_3d"]["nbytes"] == 16 * 1024 * 1024
    assert r["map"] == [True, True, True]
    assert r["inside"] == r["expected_inside"]
    assert r["nested"] == [list(range(-5, 7)), [[True, False], [False, True]]]
    assert r["snapshot"] == [float(1 << 18)] * 6


@pytest.mark.parametrize("mode", ONE_WORKER)
def test_numpy_arrays_arrive_writable(launch, mode):
    # As with pickle and concurrent.futures: a task may update its argument in place,
    # and the manager may update a result.
    r = report(launch(app(r'''
        import numpy as np


        @parc.closure
        def double_in_place(a):
            a *= 2
            return a


        def main():
            with parc.TaskFarm(policy="collect_all") as farm:
                future = farm.submit(double_in_place, np.arange(100_000.0))
                error = future.exception()
                doubled = bool(error is None and
                               np.array_equal(future.result(), 2 * np.arange(100_000.0)))
                result = farm.submit(np.copy, np.arange(100_000.0)).result()
                result[:10] = -1
            emit({"error": repr(error), "doubled": doubled,
                  "result_writable": bool(result.flags.writeable),
                  "updated": float(result[:12].sum())})


        parc.run(main)
    '''), **mode))
    assert r == {"error": "None", "doubled": True, "result_writable": True,
                 "updated": -10.0 + 10 + 11}


# -- callables -------------------------------------------------------------------------------

CALLABLES = r'''
import helper_functions


def undecorated(x):
    return x + 1


class Multiply:
    def __init__(self, k):
        self.k = k

    def __call__(self, x):
        return x * self.k

    def add(self, x):
        return x + self.k


@parc.closure
def add(a, b):
    return a + b


def main():
    offset = 1000

    def nested(x):
        return x + offset  # a closure over a local

    results = {}
    with parc.TaskFarm() as farm:
        for name, fn in [("undecorated", undecorated), ("instance", Multiply(3)),
                         ("bound method", Multiply(5).add),
                         ("partial", functools.partial(add, 100)),
                         ("builtin", abs), ("stdlib", math.factorial),
                         ("helper", helper_functions.cube),
                         ("lambda", lambda x: x - 1), ("nested", nested)]:
            try:
                results[name] = [farm.submit(fn, 4).result(), list(farm.map(fn, [1, 2]))]
            except Exception as e:
                results[name] = f"{type(e).__name__}: {e}"
        try:
            @parc.closure
            def declared_inside(x):
                return x
        except parc.UsageError as e:
            results["closure on nested"] = str(e)
    emit(results)


parc.run(main)
'''

EXPECTED_CALLS = {
    "undecorated": [5, [2, 3]], "instance": [12, [3, 6]], "bound method": [9, [6, 7]],
    "partial": [104, [101, 102]], "builtin": [4, [1, 2]], "stdlib": [24, [1, 2]],
    "helper": [64, [1, 8]], "lambda": [3, [0, 1]], "nested": [1004, [1001, 1002]],
}


def test_any_picklable_callable_can_be_submitted(launch, mode, tmp_path):
    (tmp_path / "helper_functions.py").write_text("def cube(x):\n    return x ** 3\n")
    r = report(launch(app(CALLABLES), **mode))
    for name, expected in EXPECTED_CALLS.items():
        assert r[name] == expected, (name, r[name])
    assert "declared_inside" in r["closure on nested"]
    assert "top level" in r["closure on nested"]


LARGE_BY_VALUE = r'''
import numpy as np
import parc._closures

TABLE = np.arange(250_000, dtype=np.float64)  # 2 MB: the function pickles with it


def lookup(i):  # undecorated, in __main__: sent by value, with TABLE
    return float(TABLE[i])


def main():
    fetched = []
    original = parc._closures.shipped_callable

    def counting(digest):  # rank 0 runs it for each worker that lacks the function
        fetched.append(digest)
        return original(digest)

    parc._closures.shipped_callable = counting  # workers name it; rank 0 looks it up
    with parc.TaskFarm() as farm:
        values = [f.result() for f in [farm.submit(lookup, i) for i in range(40)]]
        mapped = list(farm.map(lookup, range(100, 300)))
        doubled = list(farm.map(lambda i: 2 * TABLE[i], range(10)))
    emit({"values": values, "mapped": mapped, "doubled": doubled,
          "fetches": len(fetched), "functions": len(set(fetched))})


parc.run(main)
'''


def test_a_large_function_travels_once_per_worker(launch, mode):
    """A function that pickles large (a __main__ function with a big global) is fetched
    from rank 0 once per worker, not sent with every task."""
    r = report(launch(app(LARGE_BY_VALUE), **mode))
    assert r["values"] == list(range(40))
    assert r["mapped"] == list(range(100, 300))
    assert r["doubled"] == [2 * i for i in range(10)]
    # lookup (its submits and its map's chunks) and the lambda: each fetched at most once
    # per worker process.
    assert r["functions"] == 2, r
    assert 2 <= r["fetches"] <= 2 * (workers_of(mode) if is_mpi(mode) else 1), r


@pytest.mark.parametrize("mode", ONE_WORKER)
def test_without_cloudpickle_lambdas_and_nested_functions_fail_at_submit(
        launch, mode, tmp_path, blocked):
    (tmp_path / "helper_functions.py").write_text("def cube(x):\n    return x ** 3\n")
    first = f"import sys\nsys.path.insert(0, {str(blocked)!r})\n"
    result = launch(app(CALLABLES, first_lines=first) + textwrap.dedent(r'''
        try:
            import cloudpickle
        except ImportError as e:
            print("cloudpickle:", e)
    '''), **mode)
    assert "cloudpickle: blocked by test" in result.stdout, result.output
    r = report(result)
    for name in ("undecorated", "instance", "bound method", "partial", "builtin", "stdlib",
                 "helper"):
        assert r[name] == EXPECTED_CALLS[name], (name, r[name])
    lam, nested = r["lambda"], r["nested"]
    assert lam.startswith("UsageError: ") and "main.<locals>.<lambda>" in lam, lam
    assert nested.startswith("UsageError: ") and "main.<locals>.nested" in nested, nested
    for message in (lam, nested):
        assert "top level" in message and "python3-cloudpickle" in message, message


# -- futures ---------------------------------------------------------------------------------

FUTURES = r'''
@parc.closure
def nap(x, seconds=0.0):
    time.sleep(seconds)
    if x == "fail":
        raise ValueError("failed on purpose")
    return x


def main():
    out = {}
    with parc.TaskFarm() as farm:
        calls = []
        future = farm.submit(nap, 1, 0.1)
        future.add_done_callback(lambda f: calls.append(["first", f is future, f.result()]))
        out["calls_before"] = list(calls)
        out["result"] = future.result()
        out["calls_after"] = list(calls)
        future.add_done_callback(lambda f: calls.append(["late", f.done()]))
        out["calls_late"] = list(calls)

        futures = [farm.submit(nap, i, 0.05) for i in range(6)]
        out["as_completed"] = sorted(f.result() for f in parc.as_completed(futures))
        done, not_done = parc.wait(futures)
        out["wait_all"] = [len(done), len(not_done)]

        futures = [farm.submit(nap, i, 0.02) for i in range(4)]
        done, not_done = parc.wait(futures, return_when=parc.ALL_COMPLETED)
        out["wait_all_2"] = [len(done), len(not_done), sorted(f.result() for f in done)]
        done, not_done = concurrent.futures.wait(futures, timeout=5)  # already done
        out["cf_wait"] = [len(done), len(not_done)]

        try:
            parc.wait(futures, return_when="sometimes")
        except ValueError as e:
            out["bad_return_when"] = str(e)

        if parc.serial():
            emit(out)
            return
        # Only with real workers: a task runs while the manager waits for it.
        slow = farm.submit(nap, "slow", 1.5)
        quick = farm.submit(nap, "quick", 0.0)
        start = time.monotonic()
        try:
            slow.result(timeout=0.2)
            out["result_timeout"] = "no TimeoutError"
        except TimeoutError as e:
            out["result_timeout"] = type(e).__name__
        out["waited"] = time.monotonic() - start
        out["slow_done_early"] = slow.done()
        try:
            slow.exception(timeout=0.05)
            out["exception_timeout"] = "no TimeoutError"
        except TimeoutError:
            out["exception_timeout"] = "TimeoutError"
        try:
            list(parc.as_completed([slow], timeout=0.1))
            out["as_completed_timeout"] = "no TimeoutError"
        except TimeoutError:
            out["as_completed_timeout"] = "TimeoutError"
        done, not_done = parc.wait([slow, quick], return_when=parc.FIRST_COMPLETED)
        out["first_completed"] = [f.result() for f in done], len(not_done)
        out["slow"] = slow.result()
    with parc.TaskFarm(policy="collect_all") as farm:
        slow = farm.submit(nap, "slow", 1.0)
        bad = farm.submit(nap, "fail", 0.0)
        start = time.monotonic()
        done, not_done = parc.wait([slow, bad], return_when=parc.FIRST_EXCEPTION)
        out["first_exception"] = [sorted("bad" if f is bad else "slow" for f in done),
                                  len(not_done), time.monotonic() - start]
    emit(out)


parc.run(main)
'''


def test_futures_callbacks_and_waiting(launch, mode):
    r = report(launch(app(FUTURES), **mode))
    assert r["calls_before"] == []
    assert r["result"] == 1
    assert r["calls_after"] == [["first", True, 1]]
    assert r["calls_late"] == [["first", True, 1], ["late", True]]
    assert r["as_completed"] == list(range(6))
    assert r["wait_all"] == [6, 0]
    assert r["wait_all_2"] == [4, 0, [0, 1, 2, 3]]
    assert r["cf_wait"] == [4, 0]
    assert "return_when" in r["bad_return_when"]
    if is_mpi(mode):
        assert r["result_timeout"] == "TimeoutError"
        assert r["waited"] < 1.0, "result(timeout=0.2) waited for the task"
        assert r["slow_done_early"] is False
        assert r["exception_timeout"] == "TimeoutError"
        if workers_of(mode) > 1:  # quick runs beside slow and finishes first
            assert r["first_completed"] == [["quick"], 1]
        assert r["as_completed_timeout"] == "TimeoutError"
        assert r["slow"] == "slow"
        done, not_done, waited = r["first_exception"]
        if workers_of(mode) > 1:  # the failure is known while slow still runs
            assert (done, not_done) == (["bad"], 1) and waited < 0.8, r["first_exception"]
        else:  # one worker: bad runs after slow
            assert (done, not_done) == (["bad", "slow"], 0), r["first_exception"]


LIGHT_FUTURES = r'''
@parc.closure
def twice(x):
    if x < 0:
        raise ValueError(f"negative {x}")
    return 2 * x


class Driver:  # what a parc.Future asks of what completes it
    def _poll(self):
        pass

    def _wait_for(self, condition, timeout):
        pass

    def _cancel(self, index):
        return True


def outcome(call):
    try:
        return ["ok", call()]
    except Exception as e:
        return [type(e).__name__, str(e)[:40]]


def main():
    out = {}
    with parc.TaskFarm() as farm:
        # A future nobody waits on through a Condition never gets one.
        plain = [farm.submit(twice, i) for i in range(50)]
        out["results"] = [f.result() for f in plain] == [2 * i for i in range(50)]
        out["conditions"] = sum("_condition" in vars(f) for f in plain)
        bad = farm.submit(twice, -1)
        out["bad"] = [type(bad.exception()).__name__, outcome(bad.result)[0],
                      bad.done(), bad.cancelled(), bad.running()]
        # ... the stdlib's wait and as_completed (which do not drive parc) and callbacks
        # on finished futures make one, and see the outcome.
        done, not_done = concurrent.futures.wait(plain[:5], timeout=30)
        out["cf_wait_done"] = [len(done), len(not_done)]
        got = []
        plain[7].add_done_callback(lambda f: got.append(f.result()))
        out["late_callback"] = got
        out["repr"] = "finished returned int" in repr(plain[8])
        # Many threads wait with the stdlib's functions while futures complete: each
        # waiter's Condition appears while completions go on without one.
        futures = [farm.submit(twice, i) for i in range(3000)]
        results = {}

        def waiter(k):
            mine = futures[k::4]
            if k % 2:
                done, not_done = concurrent.futures.wait(mine, timeout=60)
                results[k] = [len(not_done), sorted(f.result() for f in done)]
            else:
                seen = [f.result() for f in concurrent.futures.as_completed(mine, timeout=60)]
                results[k] = [0, sorted(seen)]

        threads = [threading.Thread(target=waiter, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        out["threads"] = {k: [v[0], v[1] == [2 * i for i in range(k, 3000, 4)]]
                          for k, v in sorted(results.items())}
        callbacks = []
        pending = [farm.submit(twice, i) for i in range(200)]
        for f in pending:
            f.add_done_callback(lambda f: callbacks.append(f.result()))
        concurrent.futures.wait(pending, timeout=60)
        deadline = time.monotonic() + 30
        while len(callbacks) < 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        out["callbacks"] = sorted(callbacks) == [2 * i for i in range(200)]
    # Completing twice, or after a cancel, is refused as by the stdlib's Future.
    f = parc.Future(Driver(), 0)
    f.set_result(1)
    out["twice"] = outcome(lambda: f.set_result(2))
    out["after_exception"] = outcome(lambda: f.set_exception(ValueError()))
    out["kept"] = f.result()
    c = parc.Future(Driver(), 1)
    out["cancel"] = [c.cancel(), c.cancelled(), c.done(), outcome(lambda: c.set_result(3))[0],
                     outcome(c.result)[0]]
    e = parc.Future(Driver(), 2)
    e.set_exception(KeyError("k"))
    out["exception"] = [type(e.exception()).__name__, outcome(e.result)[0], e.done()]
    emit(out)


parc.run(main)
'''


def test_futures_are_light_until_waited_on(launch, mode):
    r = report(launch(app(LIGHT_FUTURES), **mode, timeout=180))
    assert r["results"] and r["conditions"] == 0
    assert r["bad"] == ["ValueError", "ValueError", True, False, False]
    assert r["cf_wait_done"] == [5, 0]
    assert r["late_callback"] == [14]
    assert r["repr"]
    assert r["threads"] == {str(k): [0, True] for k in range(4)}
    assert r["callbacks"]
    assert r["twice"][0] == "InvalidStateError" and r["after_exception"][0] == "InvalidStateError"
    assert r["kept"] == 1
    assert r["cancel"] == [True, True, True, "InvalidStateError", "CancelledError"]
    assert r["exception"] == ["KeyError", "KeyError", True]


CANCEL = r'''
LOG = sys.argv[1]


@parc.closure
def logged_nap(x):
    with open(LOG, "a") as log:
        log.write(f"{x}\n")
    time.sleep(0.1)
    return x


def main():
    with parc.TaskFarm() as farm:
        futures = [farm.submit(logged_nap, i) for i in range(8)]
        last = futures[-1]
        cancelled = last.cancel()
        out = {"cancel": cancelled, "cancelled": last.cancelled(), "done": last.done(),
               "again": last.cancel()}
        try:
            last.result()
        except parc.CancelledError as e:
            out["result"] = type(e).__name__
        out["results"] = [f.result() for f in futures[:-1]]
        out["running_cancel"] = futures[0].cancel()  # finished: cannot be cancelled
        out["first_cancelled"] = futures[0].cancelled()
    out["ran"] = sorted(int(line) for line in open(LOG))
    emit(out)


parc.run(main)
'''


def test_cancel_a_queued_task(launch, mode, tmp_path):
    r = report(launch(app(CANCEL), args=[tmp_path / "ran.log"], **mode))
    assert r["cancel"] is True and r["cancelled"] is True and r["done"] is True
    assert r["again"] is True
    assert r["result"] == "CancelledError"
    assert r["results"] == list(range(7))
    assert r["running_cancel"] is False and r["first_cancelled"] is False
    assert r["ran"] == list(range(7)), "the cancelled task ran"


def test_shutdown(launch, mode, tmp_path):
    r = report(launch(app(r'''
        LOG = sys.argv[1]


        @parc.closure
        def logged_nap(x):
            with open(LOG, "a") as log:
                log.write(f"{x}\n")
            time.sleep(0.05)
            return x


        def refused(call):
            try:
                call()
            except RuntimeError as e:
                return str(e)
            return "accepted"


        def main():
            out = {}
            with parc.TaskFarm() as farm:
                kept = farm.submit(logged_nap, 0)
            out["with_waited"] = kept.done() and kept.result()
            out["after_with"] = refused(lambda: farm.submit(logged_nap, 1))

            farm = parc.TaskFarm()
            futures = [farm.submit(logged_nap, 10 + i) for i in range(10)]
            farm.shutdown(wait=True, cancel_futures=True)
            out["states"] = ["cancelled" if f.cancelled() else f.result() for f in futures]
            farm.shutdown()  # a second shutdown is harmless
            out["submit"] = refused(lambda: farm.submit(logged_nap, 2))
            out["map"] = refused(lambda: list(farm.map(logged_nap, [3])))
            out["batch"] = refused(lambda: farm.submit_batch(logged_nap, [(4,)]))

            farm = parc.TaskFarm()
            futures = [farm.submit(logged_nap, 30 + i) for i in range(4)]
            farm.shutdown(wait=True)
            out["waited"] = [f.done() and not f.cancelled() for f in futures]
            out["ran"] = sorted(int(line) for line in open(LOG))
            out["workers"] = parc.workers()
            emit(out)


        parc.run(main)
    '''), args=[tmp_path / "ran.log"], **mode))
    assert r["with_waited"] == 0
    for key in ("after_with", "submit", "map", "batch"):
        assert r[key] == "cannot schedule new futures after shutdown", key
    states = r["states"]
    started = [s for s in states if s != "cancelled"]
    assert started == list(range(10, 10 + len(started))), states
    # Each worker holds the task it runs and the next one, sent ahead (as
    # ProcessPoolExecutor's call queue holds max_workers + 1): those are not cancelled.
    assert 1 <= len(started) <= 2 * r["workers"], "only the tasks sent to workers finish"
    assert states[len(started):] == ["cancelled"] * (10 - len(started))
    assert r["waited"] == [True] * 4
    assert r["ran"] == [0] + started + [30, 31, 32, 33]


def test_bad_options_are_refused_with_clear_messages(launch):
    r = report(launch(app(r'''
        @parc.closure
        def ident(x):
            return x


        def main():
            out = {}
            cases = {
                "policy": dict(policy="fail_slow"),
                "retries negative": dict(retries=-1),
                "retries text": dict(retries="2"),
                "retries bool": dict(retries=True),
                "retry_on instance": dict(retry_on=(ValueError("x"),)),
                "retry_on not exception": dict(retry_on=(int,)),
                "timeout zero": dict(timeout=0),
                "timeout negative": dict(timeout=-1.5),
                "timeout text": dict(timeout="1"),
            }
            for name, options in cases.items():
                try:
                    parc.TaskFarm(**options)
                    out[name] = "accepted"
                except (ValueError, TypeError) as e:
                    out[name] = [type(e).__name__, str(e)]
            with parc.TaskFarm(retries=0, timeout=2) as farm:
                out["good"] = farm.submit(ident, 1).result()
                try:
                    farm.submit_batch(ident, [1, 2])
                except TypeError as e:
                    out["batch not tuples"] = str(e)
                try:
                    farm.submit(42, 1)
                except TypeError as e:
                    out["not callable"] = str(e)
            emit(out)


        parc.run(main)
    ''')))
    expected = {
        "policy": ("ValueError", ["policy", "fail_fast", "collect_all", "fail_slow"]),
        "retries negative": ("ValueError", ["retries", "-1"]),
        "retries text": ("ValueError", ["retries", "'2'"]),
        "retries bool": ("ValueError", ["retries", "True"]),
        "retry_on instance": ("TypeError", ["retry_on", "exception types"]),
        "retry_on not exception": ("TypeError", ["retry_on", "int"]),
        "timeout zero": ("ValueError", ["timeout", "0"]),
        "timeout negative": ("ValueError", ["timeout", "-1.5"]),
        "timeout text": ("ValueError", ["timeout", "'1'"]),
    }
    for name, (kind, words) in expected.items():
        assert r[name] != "accepted", name
        assert r[name][0] == kind, (name, r[name])
        for word in words:
            assert word in r[name][1], (name, word, r[name][1])
    assert r["good"] == 1
    assert "tuples" in r["batch not tuples"]
    assert "not callable" in r["not callable"]


# -- retries and timeouts ----------------------------------------------------------------------

RETRIES = r'''
STATE = sys.argv[1]


@parc.closure
def flaky(key, failures, kind="ValueError"):
    """Fails its first `failures` attempts (counted in a file: any rank may retry it)."""
    path = os.path.join(STATE, key)
    with open(path, "a") as f:
        f.write("x")
    attempt = os.path.getsize(path)
    if attempt <= failures:
        raise {"ValueError": ValueError, "KeyError": KeyError}[kind](f"{key} attempt {attempt}")
    return [key, attempt]


def attempts(key):
    return os.path.getsize(os.path.join(STATE, key))


def main():
    out = {}
    with parc.TaskFarm(retries=2) as farm:
        out["submit"] = farm.submit(flaky, "s", 2).result()
        out["map"] = list(farm.map(flaky, ["m0", "m1", "m2"], [0, 1, 2]))
    with parc.TaskFarm(retries=1, policy="collect_all") as farm:
        e = farm.submit(flaky, "too_many", 3).exception()
        out["exhausted"] = [type(e).__name__, str(e), e.__notes__[0], attempts("too_many")]
        try:
            list(farm.map(flaky, ["g0", "g1"], [5, 0]))
        except parc.ParallelException as group:
            out["group"] = [[m.parc_index, m.__notes__[0]] for m in group.exceptions]
    with parc.TaskFarm() as farm:  # retries=0: one attempt
        e = farm.submit(flaky, "once", 1).exception()
        out["no_retries"] = [type(e).__name__, attempts("once"), e.__notes__[0]]
    emit(out)


parc.run(main)
'''


def test_retries_rerun_failed_tasks(launch, mode, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    r = report(launch(app(RETRIES), args=[state], **mode))
    assert r["submit"] == ["s", 3]
    assert r["map"] == [["m0", 1], ["m1", 2], ["m2", 3]]
    kind, message, note, attempts = r["exhausted"]
    assert (kind, message, attempts) == ("ValueError", "too_many attempt 2", 2)
    assert note.endswith(": flaky('too_many', 3), after 2 attempts"), note
    [[index, note]] = r["group"]
    assert index == 0 and note.endswith(": flaky('g0', 5), input #0, after 2 attempts"), note
    assert r["no_retries"][:2] == ["ValueError", 1]
    assert "attempts" not in r["no_retries"][2]


RETRY_ON = r'''
STATE = sys.argv[1]


class Transient(Exception):
    pass


KINDS = {"ValueError": ValueError, "KeyError": KeyError, "Transient": Transient}


@parc.closure
def flaky(key, failures, kind):
    path = os.path.join(STATE, key)
    with open(path, "a") as f:
        f.write("x")
    attempt = os.path.getsize(path)
    if attempt <= failures:
        raise KINDS[kind](f"{key} attempt {attempt}")
    return attempt


def attempts(key):
    return os.path.getsize(os.path.join(STATE, key))


def main():
    out = {}
    with parc.TaskFarm(retries=3, retry_on=(KeyError, Transient), policy="collect_all") as farm:
        out["matching"] = farm.submit(flaky, "k", 2, "KeyError").result()
        out["app_class"] = farm.submit(flaky, "t", 1, "Transient").result()
        e = farm.submit(flaky, "v", 2, "ValueError").exception()
        out["not_matching"] = [type(e).__name__, attempts("v"), e.__notes__[0]]
        out["map"] = list(farm.map(flaky, ["m0", "m1"], [1, 0], ["Transient", "KeyError"]))
    with parc.TaskFarm(retries=1, retry_on=LookupError) as farm:  # a base class matches
        out["base"] = farm.submit(flaky, "b", 1, "KeyError").result()
    emit(out)


parc.run(main)
'''


def test_retry_on_filters_what_is_retried(launch, mode, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    r = report(launch(app(RETRY_ON), args=[state], **mode))
    assert r["matching"] == 3
    assert r["app_class"] == 2
    kind, attempts, note = r["not_matching"]
    assert (kind, attempts) == ("ValueError", 1), "a ValueError was retried"
    assert "attempts" not in note
    assert r["map"] == [2, 1]
    assert r["base"] == 2


TASK_TIMEOUTS = r'''
@parc.closure
def nap(x, seconds):
    time.sleep(seconds)
    return x


def main():
    out = {}
    with parc.TaskFarm(timeout=0.5, policy="collect_all") as farm:
        start = time.monotonic()
        sleeper = farm.submit(nap, "sleeper", 1.0)
        try:
            sleeper.result()
        except parc.TaskTimeout as e:
            out["timeout"] = [type(e).__name__, isinstance(e, TimeoutError), str(e),
                              e.__notes__, e.parc_rank]
        out["detected_after"] = time.monotonic() - start
        out["quick"] = [farm.submit(nap, i, 0.01).result() for i in range(3)]
        try:
            list(farm.map(nap, ["a", "b"], [0.0, 1.0]))
        except parc.ParallelException as group:
            out["map"] = [[type(e).__name__, e.parc_index] for e in group.exceptions]
    emit(out)


parc.run(main)
'''


def test_task_timeouts(launch, mode):
    r = report(launch(app(TASK_TIMEOUTS), **mode))
    kind, is_timeout_error, message, notes, rank = r["timeout"]
    assert kind == "TaskTimeout" and is_timeout_error
    assert "0.5" in message and "timeout" in message
    assert any(n.startswith(f"rank {rank} (host ") and "nap" in n for n in notes), notes
    if is_mpi(mode):
        # Detected while the task still runs...
        assert r["detected_after"] < 0.95, r["detected_after"]
    else:
        # ...or, serially, when the task returns.
        assert r["detected_after"] >= 1.0, r["detected_after"]
    assert r["quick"] == [0, 1, 2]
    assert r["map"] == [["TaskTimeout", 1]]


MAP_TIMEOUT = r'''
@parc.closure
def nap(x, seconds):
    time.sleep(seconds)
    return x


def main():
    with parc.TaskFarm() as farm:  # map(timeout=): concurrent.futures' meaning
        start = time.monotonic()
        got = []
        try:
            for value in farm.map(nap, range(6), [0.3] * 6, timeout=0.4):
                got.append(value)
            outcome = "finished"
        except TimeoutError as e:
            outcome = type(e).__name__
        emit({"outcome": outcome, "waited": time.monotonic() - start, "got": got})


parc.run(main)
'''


@pytest.mark.parametrize("mode", MODES)
def test_map_timeout(launch, mode):
    r = report(launch(app(MAP_TIMEOUT), **mode))
    assert r["outcome"] == "TimeoutError"
    assert r["waited"] < 1.6, "6 tasks of 0.3 s: map(timeout=0.4) did not stop early"
    assert r["got"] == list(range(len(r["got"]))) and len(r["got"]) < 6


ABANDONED_MAP = r'''
@parc.closure
def nap(x, seconds):
    time.sleep(seconds)
    return x


def main():
    with parc.TaskFarm() as farm:
        if sys.argv[1] == "break":
            for value in farm.map(nap, range(5), [0.2] * 5):
                break
            print("first:", value)
        else:
            try:
                list(farm.map(nap, range(3), [0.3] * 3, timeout=0.1))
            except TimeoutError:
                print("first: TimeoutError")
    with parc.TaskFarm() as farm:
        print("second:", farm.submit(nap, "x", 0.0).result())
    print("end of main")


parc.run(main)
'''


@pytest.mark.parametrize("how", ["break", "timeout"])
def test_a_farm_after_an_abandoned_map(launch, how):
    result = launch(app(ABANDONED_MAP), ranks=2, args=[how], timeout=30)
    assert result.returncode == 0, result.output
    first = "first: 0" if how == "break" else "first: TimeoutError"
    assert result.stdout == f"{first}\nsecond: x\nend of main\n", result.output


# -- progress bars -----------------------------------------------------------------------------

PROGRESS = r'''
@parc.closure
def ident(x):
    return x


def main():
    with parc.TaskFarm() as farm:
        print("quiet", sum(farm.map(ident, range(2000))), file=sys.stderr)
        print("off", sum(farm.map(ident, range(2000), progress=False)), file=sys.stderr)
        print("on", sum(farm.map(ident, range(1000), progress=True)), file=sys.stderr)


parc.run(main)
'''


@pytest.mark.parametrize("mode", ONE_WORKER)
@pytest.mark.parametrize("bar", ["tqdm", "plain"])
def test_progress_bar(launch, mode, bar, blocked):
    first = f"import sys\nsys.path.insert(0, {str(blocked)!r})\n" if bar == "plain" else ""
    result = launch(app(PROGRESS, first_lines=first), **mode)
    assert result.returncode == 0, result.output
    err = result.stderr
    quiet_and_off, on = err.split("off 1999000\n")
    # Without progress=True, and stderr not a terminal: no bar.
    assert quiet_and_off == "quiet 1999000\n", err
    assert on.endswith("on 499500\n"), err
    if bar == "tqdm":
        assert "parc ident: 100%" in on and "1000/1000" in on, on
        assert "task/s" in on, on
    else:
        assert "[##############################] 100% 1000/1000  parc ident" in on, on
        assert "it/s" not in on and "task/s" not in on


@pytest.mark.parametrize("bar", ["tqdm", "plain"])
def test_progress_bar_by_default_on_a_terminal(launch, bar, blocked):
    # progress=None: a bar when stderr is a terminal and the map is long (or unbounded).
    first = f"import sys\nsys.path.insert(0, {str(blocked)!r})\n" if bar == "plain" else ""
    r = report(launch(app(r'''
        import io


        class Terminal(io.StringIO):
            def isatty(self):
                return True


        @parc.closure
        def ident(x):
            return x


        def main():
            out = {}
            real = sys.stderr
            with parc.TaskFarm() as farm:
                for name, inputs in [("short", range(10)), ("long", range(1500)),
                                     ("generator", (i for i in range(50)))]:
                    sys.stderr = Terminal()
                    try:
                        total = sum(farm.map(ident, inputs))
                    finally:
                        captured, sys.stderr = sys.stderr.getvalue(), real
                    out[name] = [total, captured]
            emit(out)


        parc.run(main)
    ''', first_lines=first)))
    assert r["short"] == [45, ""], "a short map shows no bar"
    total, drawn = r["long"]
    assert total == 1499 * 1500 // 2
    assert "parc ident" in drawn and "1500/1500" in drawn, drawn
    total, drawn = r["generator"]
    assert total == 49 * 50 // 2
    assert "parc ident" in drawn and "50" in drawn, drawn
