"""parc.Pipeline end to end: order, streaming, failures, retries, numpy, bad input.

Each app is a small script run as a real program, serially (one and three simulated
workers) and under mpiexec.mpich -n 2, 3 and 4, where stages get one worker each (n 2:
all share the one worker; n 3: the 2-worker middle stage shares a rank with stage 1;
n 4: every stage has ranks of its own). Apps print their findings as `REPORT {json}`.
"""

import pytest

from conftest import app, is_mpi, report, workers_of

MODES = [
    pytest.param(dict(), id="serial"),
    pytest.param(dict(serial=3), id="serial3"),
    pytest.param(dict(ranks=2), id="np2"),
    pytest.param(dict(ranks=3), id="np3"),
    pytest.param(dict(ranks=4), id="np4"),
]

STAGES = r'''
class BadItem(Exception):
    pass


@parc.closure
def generate(seed):
    return list(range(seed, seed + 4))


@parc.closure
def transform(values):
    if values[0] in FAIL_ON:
        raise BadItem(f"item {values[0]} is bad")
    if values[0] == SLOW:
        time.sleep(0.5)
    return [v * v for v in values], os.getpid()


@parc.closure
def reduce(pair):
    values, transform_pid = pair
    return sum(values), transform_pid, os.getpid()


def expected(seed):
    return sum(v * v for v in range(seed, seed + 4))

'''


def assigned(wanted, workers):
    """Stage ranks by the documented rule: in turn from a cursor going round the workers."""
    ranks, cursor = [], 0
    for count in wanted:
        count = min(count, workers)
        ranks.append([1 + (cursor + i) % workers for i in range(count)])
        cursor = (cursor + count) % workers
    return ranks


def pipeline_app(body, fail_on=(), slow=-1):
    return app(body, helpers=f"FAIL_ON = {set(fail_on) or 'set()'}\nSLOW = {slow}\n" + STAGES)


@pytest.mark.parametrize("mode", MODES)
def test_outputs_come_in_input_order(launch, mode):
    r = report(launch(pipeline_app(r'''
        def main():
            pipe = parc.Pipeline([generate, parc.Stage(transform, workers=2), reduce])
            out = list(pipe.run(range(500)))
            emit({"sums": [s for s, _, _ in out],
                  "transform_pids": sorted({p for _, p, _ in out}),
                  "reduce_pids": sorted({p for _, _, p in out}),
                  "ranks": pipe.ranks(),
                  "again": [s for s, _, _ in pipe.run(iter([3, 1, 2]))],
                  "empty": list(pipe.run([])),
                  "manager": os.getpid(),
                  "is_generator": type(pipe.run([])).__name__})


        parc.run(main)
    '''), **mode))
    assert r["sums"] == [sum(v * v for v in range(s, s + 4)) for s in range(500)]
    assert r["again"] == [sum(v * v for v in range(s, s + 4)) for s in (3, 1, 2)]
    assert r["empty"] == [] and r["is_generator"] == "generator"
    workers = workers_of(mode)
    assert r["ranks"] == assigned([1, 2, 1], workers)
    assert len(r["reduce_pids"]) == 1, "a one-worker stage runs on one rank"
    if is_mpi(mode):
        assert r["manager"] not in r["reduce_pids"] + r["transform_pids"]
        assert len(r["transform_pids"]) == min(2, workers)


def test_stage_ranks(launch):
    r = report(launch(app(r'''
        def f(x):
            return x


        def main():
            emit({"121": parc.Pipeline([f, parc.Stage(f, workers=2), f]).ranks(),
                  "1111": parc.Pipeline([f, f, f, f]).ranks(),
                  "5": parc.Pipeline([parc.Stage(f, workers=5)]).ranks()})


        parc.run(main)
    '''), ranks=3))
    assert r["121"] == [[1], [2, 1], [2]]
    assert r["1111"] == [[1], [2], [1], [2]]
    assert r["5"] == [[1, 2]]


@pytest.mark.parametrize("mode", [m for m in MODES if m.id in ("serial3", "np3", "np4")])
def test_arrival_order(launch, mode):
    # Item 0 sleeps in the 2-worker stage: in arrival order the others overtake it.
    r = report(launch(pipeline_app(r'''
        def main():
            pipe = parc.Pipeline([generate, parc.Stage(transform, workers=2), reduce])
            arrived = [s for s, _, _ in pipe.run(range(40), ordered=False)]
            emit({"arrived": arrived})


        parc.run(main)
    ''', slow=0), **mode))
    wanted = [sum(v * v for v in range(s, s + 4)) for s in range(40)]
    assert sorted(r["arrived"]) == sorted(wanted)
    if is_mpi(mode):  # serially the simulated workers run one after the other
        assert r["arrived"].index(wanted[0]) > 0, r["arrived"]


@pytest.mark.parametrize("mode", MODES)
def test_fail_fast_names_the_stage_and_item(launch, mode):
    r = report(launch(pipeline_app(r'''
        def main():
            pulled = []

            def items():
                for i in itertools.count():
                    pulled.append(i)
                    yield i

            got = []
            pipe = parc.Pipeline([generate, parc.Stage(transform, workers=2), reduce])
            try:
                for s, _, _ in pipe.run(items(), window=20):
                    got.append(s)
            except* BadItem as group:
                members = group.exceptions
                emit({"types": [type(e).__name__ for e in members],
                      "messages": [str(e) for e in members],
                      "notes": [e.__notes__ for e in members],
                      "index": [e.parc_index for e in members],
                      "stage": [e.parc_stage for e in members],
                      "group": str(group), "is_parallel": isinstance(group, parc.ParallelException),
                      "got": got, "pulled": len(pulled)})


        parc.run(main)
    ''', fail_on={13}), **mode))
    assert r["types"] == ["BadItem"] and r["messages"] == ["item 13 is bad"]
    assert r["index"] == [13] and r["stage"] == [1]
    notes = r["notes"][0]
    assert notes[-1] == "pipeline stage 2 of 3 (transform), item #13", notes
    assert any(n.startswith("rank ") and "transform([13, 14, 15, 16])" in n for n in notes)
    assert any(n.startswith("remote traceback:") for n in notes)
    assert "pipeline stage 2 of 3 (transform) failed on item #13" in r["group"]
    assert r["got"] == [sum(v * v for v in range(s, s + 4)) for s in range(len(r["got"]))]
    assert len(r["got"]) <= 13
    assert r["pulled"] <= 14 + 20, "fail_fast stopped reading the (unbounded) input"


@pytest.mark.parametrize("mode", MODES)
def test_collect_all_drops_failed_items_and_raises_them_all(launch, mode):
    r = report(launch(pipeline_app(r'''
        def main():
            got = []
            pipe = parc.Pipeline([generate, parc.Stage(transform, workers=2), reduce],
                                 policy="collect_all")
            try:
                for s, _, _ in pipe.run(range(30)):
                    got.append(s)
            except parc.ParallelException as group:
                emit({"index": [e.parc_index for e in group.exceptions],
                      "types": sorted({type(e).__name__ for e in group.exceptions}),
                      "notes": [e.__notes__[-1] for e in group.exceptions],
                      "group": str(group), "got": got})


        parc.run(main)
    ''', fail_on={0, 7, 14, 21, 28}), **mode))
    assert r["index"] == [0, 7, 14, 21, 28]
    assert r["types"] == ["BadItem"]
    assert r["notes"] == [f"pipeline stage 2 of 3 (transform), item #{i}"
                          for i in (0, 7, 14, 21, 28)]
    assert r["group"].startswith("pipeline: 5 of 30 items failed")
    assert r["got"] == [sum(v * v for v in range(s, s + 4)) for s in range(30) if s % 7]


@pytest.mark.parametrize("mode", [m for m in MODES if m.id in ("serial", "np3", "np4")])
def test_retries(launch, mode):
    r = report(launch(app(r'''
        seen = set()


        def flaky(x):
            # Fails the first time this process sees x: a retry elsewhere may fail once more.
            if x not in seen:
                seen.add(x)
                raise ConnectionError(f"first attempt at {x}")
            return x * 10


        def other(x):
            raise ValueError(f"always {x}")


        def main():
            out = {}
            pipe = parc.Pipeline([abs, parc.Stage(flaky, workers=2), str], retries=3)
            out["retried"] = list(pipe.run(range(20)))
            filtered = parc.Pipeline([flaky, other], retries=3, retry_on=(ConnectionError,),
                                     policy="collect_all")
            try:
                list(filtered.run(range(100, 103)))
            except parc.ParallelException as group:
                out["filtered"] = [[type(e).__name__, e.__notes__[0]] for e in group.exceptions]
            emit(out)


        parc.run(main)
    '''), **mode))
    assert r["retried"] == [str(10 * x) for x in range(20)]
    # flaky is retried (ConnectionError), other's ValueError is not.
    assert [t for t, _ in r["filtered"]] == ["ValueError"] * 3
    assert all("after" not in note for _, note in r["filtered"]), r["filtered"]


@pytest.mark.parametrize("mode", [m for m in MODES if m.id in ("serial", "np3")])
def test_timeout_fails_the_item_in_its_stage(launch, mode):
    r = report(launch(app(r'''
        def nap(x):
            time.sleep(1.0 if x == 2 else 0.0)
            return x


        def main():
            got = []
            pipe = parc.Pipeline([abs, parc.Stage(nap, name="napper"), abs],
                                 policy="collect_all", timeout=0.3)
            try:
                for y in pipe.run(range(5)):
                    got.append(y)
            except* parc.TaskTimeout as group:
                emit({"got": got, "index": [e.parc_index for e in group.exceptions],
                      "note": group.exceptions[0].__notes__[-1]})


        parc.run(main)
    '''), **mode))
    assert r["got"] == [0, 1, 3, 4]
    assert r["index"] == [2]
    assert r["note"] == "pipeline stage 2 of 3 (napper), item #2"


@pytest.mark.parametrize("mode", [m for m in MODES if m.id in ("serial", "np2", "np4")])
def test_unbounded_generator_runs_in_bounded_memory(launch, mode):
    r = report(launch(app(r'''
        def inc(x):
            return x + 1


        def main():
            pulled = 0

            def items():
                nonlocal pulled
                for i in itertools.count():
                    pulled += 1
                    yield i

            pipe = parc.Pipeline([inc, parc.Stage(inc, workers=2), inc])
            ahead = []
            got = []
            for y in pipe.run(items(), window=50):
                got.append(y)
                ahead.append(pulled - len(got))
                if len(got) == 3000:
                    break
            # Default window: 64 per worker.
            got_default = 0
            pulled = 0
            for y in pipe.run(items()):
                got_default += 1
                if got_default == 2000:
                    break
            emit({"got": got == list(range(3, 3003)), "most_ahead": max(ahead),
                  "default_ahead": pulled - got_default,
                  "after": list(pipe.run(range(3)))})


        parc.run(main)
    '''), **mode))
    assert r["got"]
    assert r["most_ahead"] <= 50
    assert r["default_ahead"] <= 64 * workers_of(mode)
    assert r["after"] == [3, 4, 5], "nothing left over from the runs left early"


@pytest.mark.parametrize("mode", [m for m in MODES if m.id in ("serial", "np4")])
def test_numpy_arrays_through_stages(launch, mode):
    r = report(launch(app(r'''
        import numpy as np


        def make(seed):
            return np.random.default_rng(seed).standard_normal(100_000)


        def scale(a):
            a *= 2.0  # the stage's own array: writable
            return a


        def main():
            pipe = parc.Pipeline([make, parc.Stage(scale, workers=2)])
            out = list(pipe.run(range(6)))
            ok = all(np.array_equal(a, 2.0 * make(s)) for s, a in zip(range(6), out))
            emit({"ok": ok, "dtype": str(out[0].dtype), "shape": out[0].shape,
                  "writeable": out[0].flags.writeable,
                  "sums": [float(x) for x in parc.Pipeline([make, np.sum]).run(range(3))]})


        parc.run(main)
    '''), **mode))
    assert r["ok"] and r["dtype"] == "float64" and r["shape"] == [100_000]
    assert r["writeable"]
    assert len(r["sums"]) == 3


def test_bad_input_gives_clear_errors(launch):
    r = report(launch(app(r'''
        def f(x):
            return x


        def main():
            out = {}
            cases = {
                "not callable": lambda: parc.Pipeline([f, 42]),
                "workers 0": lambda: parc.Pipeline([parc.Stage(f, workers=0)]),
                "workers str": lambda: parc.Stage(f, workers="2"),
                "policy": lambda: parc.Pipeline([f], policy="best_effort"),
                "empty": lambda: parc.Pipeline([]),
                "not a list": lambda: parc.Pipeline(f),
                "retries": lambda: parc.Pipeline([f], retries=-1),
                "retry_on": lambda: parc.Pipeline([f], retry_on=(42,)),
                "window": lambda: parc.Pipeline([f]).run([1], window=0),
                "unpicklable item": lambda: list(parc.Pipeline([f]).run([threading.Lock()])),
            }
            for name, case in cases.items():
                try:
                    case()
                    out[name] = None
                except Exception as e:
                    out[name] = [type(e).__name__, str(e)]
            emit(out)


        parc.run(main)
    ''')))
    assert r["not callable"] == ["TypeError", "parc.Pipeline: stage 2 (42) is not callable; "
                                 "give functions or parc.Stage(fn, workers=N)"]
    assert r["workers 0"] == ["ValueError", "parc.Stage: workers must be an int >= 1, got 0"]
    assert r["workers str"][0] == "ValueError"
    assert r["policy"][0] == "ValueError" and "best_effort" in r["policy"][1]
    assert r["empty"] == ["ValueError", "parc.Pipeline needs at least one stage"]
    assert r["not a list"][0] == "TypeError" and "list of stages" in r["not a list"][1]
    assert r["retries"][0] == "ValueError"
    assert r["retry_on"][0] == "TypeError"
    assert r["window"][0] == "ValueError" and "window" in r["window"][1]
    assert r["unpicklable item"][0] == "TypeError"
    assert "item #0 of the input (lock) cannot be pickled" in r["unpicklable item"][1]


@pytest.mark.parametrize("mode", [m for m in MODES if m.id in ("serial", "np3")])
def test_refused_inside_a_task_and_closed_by_its_with_block(launch, mode):
    r = report(launch(app(r'''
        def f(x):
            return x + 1


        def nested(x):
            try:
                parc.Pipeline([f])
            except parc.UsageError as e:
                return str(e)
            return "allowed"


        def main():
            out = {}
            with parc.TaskFarm() as farm:
                out["nested"] = farm.submit(nested, 1).result()
            with parc.Pipeline([f, parc.Stage(f, workers=2)]) as pipe:
                run = pipe.run(itertools.count())
                out["first"] = next(run)
            out["after_close"] = list(run)
            try:
                pipe.run([1])
            except RuntimeError as e:
                out["run_after_close"] = str(e)
            with parc.TaskFarm() as farm:
                out["farm_after"] = list(farm.map(f, range(3)))
            out["fresh"] = list(parc.Pipeline([f, f]).run(range(3)))
            emit(out)


        parc.run(main)
    '''), **mode))
    assert r["nested"].startswith("parc.Pipeline inside a task"), r["nested"]
    assert r["first"] == 2
    assert r["after_close"] == []
    assert "after close()" in r["run_after_close"]
    assert r["farm_after"] == [1, 2, 3]
    assert r["fresh"] == [2, 3, 4]


# -- items in chunks ------------------------------------------------------------------
# Under mpiexec items travel in chunks sized from the stages' measured times (as map's);
# chunksize=k makes chunks of k in every mode (serial runs otherwise send items alone).
# A stage function sees how it was called: by _worker.run_chunk (in a chunk) or not.

CHUNK_STAGES = r'''
class Bad(Exception):
    pass


def caller():
    return sys._getframe(2).f_code.co_name  # run_chunk, or execute for an item alone


def tag(label, fail_on):
    def stage(value):
        item = value if isinstance(value, int) else value[0]
        if item in fail_on:
            raise Bad(f"{label} refused {item}")
        if item == UNPICKLABLE and label == "b":
            return threading.Lock()
        trail = [value] if isinstance(value, int) else list(value)
        return trail + [label, caller() == "run_chunk"]
    stage.__name__ = stage.__qualname__ = label
    return stage

'''


def chunk_app(body, unpicklable=-1):
    return app(body, helpers=f"UNPICKLABLE = {unpicklable}\n" + CHUNK_STAGES)


@pytest.mark.parametrize("mode", MODES)
def test_chunks_keep_order_and_pass_survivors_on_once(launch, mode):
    # collect_all: the others of a chunk that failed in stage b go on to stage c alone
    # (not through a or b again), and every output comes out in input order.
    r = report(launch(chunk_app(r'''
        def main():
            out = {}
            stages = [tag("a", {5}), parc.Stage(tag("b", {9, 10, 22}), workers=2),
                      tag("c", {17, 23})]
            pipe = parc.Pipeline(stages, policy="collect_all")
            for ordered in (True, False):
                got = []
                try:
                    for y in pipe.run(range(30), ordered=ordered, chunksize=4, window=12):
                        got.append(y)
                except* Bad as group:
                    out[f"failed{ordered}"] = [[e.parc_index, e.parc_stage, str(e),
                                                e.__notes__[0], e.__notes__[-1]]
                                               for e in group.exceptions]
                out[f"got{ordered}"] = got
            emit(out)


        parc.run(main)
    '''), **mode))
    failed = {5: 0, 9: 1, 10: 1, 22: 1, 17: 2, 23: 2}
    wanted = [[i, "a", True, "b", True, "c", True] for i in range(30) if i not in failed]
    assert r["gotTrue"] == wanted
    assert sorted(r["gotFalse"]) == wanted
    for ordered in ("True", "False"):
        rows = r[f"failed{ordered}"]
        assert [row[0] for row in rows] == sorted(failed)
        for index, stage, message, where, last in rows:
            assert stage == failed[index]
            assert message == f"{'abc'[stage]} refused {index}"
            assert where.startswith("rank ") and where.endswith(f", input #{index}"), where
            assert f": {'abc'[stage]}(" in where, where
            assert last == f"pipeline stage {stage + 1} of 3 ({'abc'[stage]}), item #{index}"


@pytest.mark.parametrize("mode", MODES)
def test_chunks_fail_fast(launch, mode):
    r = report(launch(chunk_app(r'''
        def main():
            pulled = []

            def items():
                for i in itertools.count():
                    pulled.append(i)
                    yield i

            got = []
            pipe = parc.Pipeline([tag("a", ()), tag("b", {13})])
            try:
                for y in pipe.run(items(), chunksize=3, window=9):
                    got.append(y[0])
            except* Bad as group:
                e, = group.exceptions
                emit({"index": e.parc_index, "stage": e.parc_stage, "got": got,
                      "pulled": len(pulled), "note": e.__notes__[-1],
                      "call": e.__notes__[0], "group": str(group)})


        parc.run(main)
    '''), **mode))
    assert r["index"] == 13 and r["stage"] == 1
    assert r["note"] == "pipeline stage 2 of 2 (b), item #13"
    assert r["call"].endswith("b([13, 'a', True]), input #13"), r["call"]
    assert "failed on item #13" in r["group"]
    assert r["got"] == list(range(len(r["got"]))) and len(r["got"]) <= 12
    assert r["pulled"] <= 15 + 9, "fail_fast stopped reading the (unbounded) input"


@pytest.mark.parametrize("mode", [m for m in MODES if m.id in ("serial", "np2", "np4")])
def test_chunks_stay_inside_the_window(launch, mode):
    r = report(launch(chunk_app(r'''
        def main():
            pulled = 0

            def items():
                nonlocal pulled
                for i in itertools.count():
                    pulled += 1
                    yield i

            out = {}
            pipe = parc.Pipeline([tag("a", ()), parc.Stage(tag("b", ()), workers=2)])
            for window, chunksize in ((10, 4), (5, 50), (40, None)):
                got, ahead = [], []
                for y in pipe.run(items(), window=window, chunksize=chunksize):
                    got.append(y[0])
                    ahead.append(pulled - len(got))
                    if len(got) == 500:
                        break
                pulled = 0
                out[f"{window}"] = [got == list(range(500)), max(ahead)]
            emit(out)


        parc.run(main)
    '''), **mode))
    for window in (10, 5, 40):
        ok, most_ahead = r[str(window)]
        assert ok and most_ahead <= window, (window, most_ahead)


@pytest.mark.parametrize("mode", MODES)
def test_batched_automatically_where_a_chunk_changes_nothing(launch, mode):
    # Under MPI short items go in chunks; serially, with retries or with a timeout each
    # item is a task of its own (as in map).
    r = report(launch(chunk_app(r'''
        def main():
            out = {}
            stages = [tag("a", ()), tag("b", ())]
            for name, options in (("plain", {}), ("retries", {"retries": 1}),
                                  ("timeout", {"timeout": 30})):
                got = list(parc.Pipeline(stages, **options).run(range(3000)))
                out[name] = [[y[0] for y in got] == list(range(3000)),
                             sum(y[2] and y[4] for y in got)]
            emit(out)


        parc.run(main)
    '''), **mode))
    for name in ("plain", "retries", "timeout"):
        assert r[name][0], name
    assert r["retries"][1] == 0 and r["timeout"][1] == 0
    if is_mpi(mode):
        assert r["plain"][1] > 2000, r["plain"]
    else:
        assert r["plain"][1] == 0


@pytest.mark.parametrize("mode", [m for m in MODES if m.id in ("serial", "np3")])
def test_chunk_with_an_unpicklable_result(launch, mode):
    r = report(launch(chunk_app(r'''
        def main():
            got = []
            pipe = parc.Pipeline([tag("a", ()), tag("b", ()), tag("c", ())],
                                 policy="collect_all")
            try:
                for y in pipe.run(range(8), chunksize=4):
                    got.append(y[0])
            except* TypeError as group:
                emit({"got": got, "index": [e.parc_index for e in group.exceptions],
                      "notes": [e.__notes__ for e in group.exceptions]})


        parc.run(main)
    ''', unpicklable=6), **mode))
    assert r["got"] == [0, 1, 2, 3, 4, 5, 7]
    assert r["index"] == [6]
    notes = r["notes"][0]
    assert any("cannot be pickled" in n for n in notes), notes
    assert notes[-1] == "pipeline stage 2 of 3 (b), item #6"


def test_bad_chunksize(launch):
    r = report(launch(app(r'''
        def main():
            out = []
            for bad in (0, -1, 2.5, True, "4"):
                try:
                    parc.Pipeline([abs]).run([1], chunksize=bad)
                    out.append(None)
                except ValueError as e:
                    out.append(str(e))
            emit(out)


        parc.run(main)
    ''')))
    assert all(m and "chunksize must be a positive int" in m for m in r), r
