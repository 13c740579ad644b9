"""Exceptions on K of N ranks, in every manager: one group with exactly K members, every time.

One app per launch mode runs the whole matrix (farm map / submit / chunksize / fail_fast,
SPMD regions, pipelines, proxies) x exception kinds x K in {one, some, all}, several times
over (REPEATS), and prints one `REPORT {...}` line per check; the tests below judge the
lines. Kinds: a plain ValueError, a custom class with an attribute, a chain (`raise X from
Y`), an exception with an unpicklable attribute (-> parc.RemoteError keeping the type
name) and sys.exit (-> parc.RemoteError, builtins.SystemExit, as python-exceptions.md
says).
"""

import functools
import re
import socket
import tempfile
from pathlib import Path

import pytest

from conftest import _run, app, reports, workers_of

KINDS = ["plain", "custom", "chained", "unpicklable", "exit"]
SIZES = ["one", "some", "all"]
LAUNCHES = {"serial3": dict(serial=3), "np2": dict(ranks=2), "np3": dict(ranks=3),
            "np4": dict(ranks=4)}
REPEATS = 3  # the same check, again and again in one job: "every time"
N_TASKS = 6  # farm tasks and pipeline items per check

KOFN = r'''
KINDS = ["plain", "custom", "chained", "unpicklable", "exit"]
N = 6
REPEATS = int(sys.argv[1])


class KofNError(ValueError):
    def __init__(self, message, code):
        super().__init__(message, code)  # every argument in args: it pickles
        self.code = code


class Locked(Exception):
    def __init__(self, message):
        super().__init__(message)
        self.lock = threading.Lock()  # cannot be pickled: a parc.RemoteError arrives


def boom(kind, where):
    if kind == "plain":
        raise ValueError(f"plain {where}")
    if kind == "custom":
        raise KofNError(f"custom {where}", where)
    if kind == "chained":
        try:
            raise KeyError(f"inner {where}")
        except KeyError as inner:
            raise RuntimeError(f"outer {where}") from inner
    if kind == "unpicklable":
        raise Locked(f"locked {where}")
    sys.exit(where + 3)


def failing_of(n, size):
    """The K positions of n that fail: one (the last), some (about half, spread), all."""
    k = {"one": 1, "some": max(1, n // 2), "all": n}[size]
    return tuple(sorted(n - 1 - (i * n) // k for i in range(k)))


@parc.closure
def task(x, kind, failing):
    if x in failing:
        boom(kind, x)
    return x * 10


@parc.closure
def region(ctx, kind, failing):
    if ctx.rank in failing:  # before any parc call: no cancellation can come first
        boom(kind, ctx.rank)
    return ctx.allreduce(1)  # the others wait here and are released


@parc.closure
def region_late(ctx, kind, failing):
    ctx.barrier()  # a failing rank may be released here by another's failure first
    if ctx.rank in failing:
        boom(kind, ctx.rank)
    return ctx.allreduce(1)


def pass_on(item):
    return item


def stage_fails(item):
    x, kind, failing = item
    if x in failing:
        boom(kind, x)
    return x * 10


class Thrower:
    def throw(self, kind, where):
        boom(kind, where)

    def ok(self, x):
        return x


def describe(e):
    if e is None:
        return None
    return {
        "type": f"{type(e).__module__}.{type(e).__qualname__}",
        "str": str(e),
        "notes": list(getattr(e, "__notes__", [])),
        "rank": getattr(e, "parc_rank", None),
        "task": getattr(e, "parc_task", None),
        "host": getattr(e, "parc_host", None),
        "pid": getattr(e, "parc_pid", None),
        "index": getattr(e, "parc_index", None),
        "region_rank": getattr(e, "parc_region_rank", None),
        "stage": getattr(e, "parc_stage", None),
        "remote_error": isinstance(e, parc.RemoteError),
        "type_name": getattr(e, "type_name", None),
        "message": getattr(e, "message", None),
        "code": getattr(e, "code", None),
        "cause": describe(e.__cause__),
    }


def group_of(call):
    """(the ParallelException's message and members, or None, and the seconds it took)."""
    start = time.monotonic()
    try:
        value = call()
    except parc.ParallelException as group:
        return {"message": group.message, "members": [describe(m) for m in group.exceptions],
                "value": None, "seconds": time.monotonic() - start}
    return {"message": None, "members": None, "value": value,
            "seconds": time.monotonic() - start}


def main():
    n_region = len(parc.Spmd().ranks)
    for rep in range(REPEATS):
        for kind in KINDS:
            for size in ("one", "some", "all"):
                base = {"rep": rep, "kind": kind, "size": size, "pid0": os.getpid()}
                failing = failing_of(N, size)
                xs = range(N)
                with parc.TaskFarm(policy="collect_all") as farm:
                    got = group_of(lambda: list(farm.map(task, xs, [kind] * N, [failing] * N)))
                    emit({**base, "manager": "farm", "op": "map", "failing": failing, **got})
                    got = group_of(lambda: list(farm.map(task, xs, [kind] * N, [failing] * N,
                                                         chunksize=2)))
                    emit({**base, "manager": "farm", "op": "chunksize", "failing": failing,
                          **got})
                    futures = farm.submit_batch(task, [(x, kind, failing) for x in xs])
                    parc.wait(futures)
                    emit({**base, "manager": "farm", "op": "submit", "failing": failing,
                          "outcomes": [describe(f.exception()) if f.exception() else f.result()
                                       for f in futures]})
                with parc.TaskFarm() as farm:  # fail_fast
                    got = group_of(lambda: list(farm.map(task, xs, [kind] * N, [failing] * N)))
                    got["after"] = farm.submit(task, 1, kind, ()).result()  # still usable
                    emit({**base, "manager": "farm", "op": "fail_fast", "failing": failing,
                          **got})
                region_failing = failing_of(n_region, size)
                got = group_of(lambda: parc.Spmd().run(region, kind, region_failing))
                emit({**base, "manager": "spmd", "op": "run", "failing": region_failing,
                      "ranks": parc.Spmd().ranks, **got})
                got = group_of(lambda: parc.Spmd().run(region_late, kind, region_failing))
                emit({**base, "manager": "spmd", "op": "late", "failing": region_failing,
                      "ranks": parc.Spmd().ranks, **got})
                items = [(x, kind, failing) for x in xs]
                for policy in ("collect_all", "fail_fast"):
                    stages = [pass_on, parc.Stage(stage_fails, workers=2)]
                    got = group_of(lambda: list(parc.Pipeline(stages, policy=policy).run(items)))
                    emit({**base, "manager": "pipeline", "op": policy, "failing": failing,
                          **got})
        # Proxies: one exception per call; K of N asynchronous calls fail.
        owner = parc.workers()
        thrower = parc.Proxy.create(Thrower, owner=owner)
        for kind in KINDS:
            for size in ("one", "some", "all"):
                failing = failing_of(N, size)
                futures = [thrower.async_.throw(kind, x) if x in failing else thrower.async_.ok(x)
                           for x in range(N)]
                outcomes = [describe(f.exception()) if f.exception() else f.result()
                            for f in futures]
                try:
                    thrower.throw(kind, 1)
                    direct = None
                except BaseException as e:  # sys.exit must arrive as an Exception too
                    direct = describe(e)
                emit({"rep": rep, "kind": kind, "size": size, "pid0": os.getpid(),
                      "manager": "proxy", "op": "call", "failing": failing, "owner": owner,
                      "outcomes": outcomes, "direct": direct, "after": thrower.ok(5)})
    emit({"done": True}, tag="DONE")


parc.run(main)
'''

HOST = socket.gethostname()


@functools.lru_cache(maxsize=None)
def matrix(launch_id):
    """The app, launched once in `launch_id` for every test."""
    folder = Path(tempfile.mkdtemp(prefix=f"parc-kofn-{launch_id}-"))
    repeats = 1 if launch_id.startswith("serial") else REPEATS
    return _run(app(KOFN), args=[repeats], tmp_path=folder, timeout=300,
                **LAUNCHES[launch_id])


def records(launch_id, manager, op, kind, size):
    result = matrix(launch_id)  # a failed launch fails every test of its mode, once
    assert result.returncode == 0, result.output[-5000:]
    assert reports(result, "DONE"), result.output[-5000:]
    found = [r for r in reports(result)
             if (r["manager"], r["op"], r["kind"], r["size"]) == (manager, op, kind, size)]
    assert found, f"no report for {manager} {op} {kind} {size}"
    return found


def check_kind(member, kind, where):
    """The member is what `boom(kind, where)` raised, rebuilt as the docs promise."""
    if kind == "plain":
        assert (member["type"], member["str"]) == ("builtins.ValueError", f"plain {where}")
    elif kind == "custom":
        assert member["type"] == "__main__.KofNError", member
        assert member["str"] == f"('custom {where}', {where})" and member["code"] == where
    elif kind == "chained":
        assert (member["type"], member["str"]) == ("builtins.RuntimeError", f"outer {where}")
        cause = member["cause"]
        assert cause is not None, "the __cause__ was lost"
        assert (cause["type"], cause["str"]) == ("builtins.KeyError", f"'inner {where}'")
    elif kind == "unpicklable":
        assert member["remote_error"] and member["type"] == "parc.RemoteError", member
        assert member["type_name"] == "__main__.Locked"
        assert member["message"] == f"locked {where}"
        assert any(n.startswith("rebuilt as parc.RemoteError: ") and "_thread.lock" in n
                   for n in member["notes"]), member["notes"]
    else:
        assert member["remote_error"] and member["type"] == "parc.RemoteError", member
        assert member["type_name"] == "builtins.SystemExit"
        assert member["message"] == f"the task called sys.exit({where + 3})"
    assert any(n.startswith("remote traceback:\n") and "boom" in n for n in member["notes"]), \
        member["notes"]


WHERE = re.compile(r"^rank (\d+) \(host (.+), pid (\d+)\), (task (\d+)|proxy call): (.*)$",
                   re.DOTALL)


def check_where(member, launch_id, pid0, call_start, suffix=""):
    """The "rank R (host H, pid P), task T: call" note agrees with the parc_* attributes."""
    found = [m for m in map(WHERE.match, member["notes"]) if m]
    assert len(found) == 1, member["notes"]
    rank, host, pid, _, task, call = found[0].groups()
    assert (int(rank), host, int(pid)) == (member["rank"], member["host"], member["pid"])
    if task is not None:
        assert int(task) == member["task"]
    assert host == HOST
    assert 1 <= int(rank) <= workers_of(LAUNCHES[launch_id]), member
    assert (int(pid) != pid0) == launch_id.startswith("np"), "ran in the wrong process"
    assert call.startswith(call_start) and call.endswith(suffix), (call, call_start, suffix)


@pytest.fixture(params=list(LAUNCHES))
def launch_id(request):
    return request.param


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("op", ["map", "chunksize"])
def test_farm_map_collect_all_has_exactly_k_members(launch_id, op, kind, size):
    for r in records(launch_id, "farm", op, kind, size):
        failing = r["failing"]
        assert r["members"] is not None, f"rep {r['rep']}: no group, got {r['value']}"
        assert [m["index"] for m in r["members"]] == failing, f"rep {r['rep']}"
        assert r["message"] == f"task: {len(failing)} of {N_TASKS} " \
            f"{'tasks' if op == 'map' else 'inputs'} failed", r["message"]
        for m in r["members"]:
            check_kind(m, kind, m["index"])
            check_where(m, launch_id, r["pid0"], f"task({m['index']}, '{kind}', ",
                        f", input #{m['index']}")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", SIZES)
def test_farm_futures_fail_exactly_on_k_tasks(launch_id, kind, size):
    for r in records(launch_id, "farm", "submit", kind, size):
        outcomes = r["outcomes"]
        failed = [x for x, o in enumerate(outcomes) if isinstance(o, dict)]
        assert failed == r["failing"], f"rep {r['rep']}: {outcomes}"
        for x, o in enumerate(outcomes):
            if x in failed:
                check_kind(o, kind, x)
                assert o["index"] == x  # submit_batch names the input
                check_where(o, launch_id, r["pid0"], f"task({x}, '{kind}', ")
            else:
                assert o == x * 10


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", SIZES)
def test_farm_fail_fast_raises_at_least_one_member(launch_id, kind, size):
    for r in records(launch_id, "farm", "fail_fast", kind, size):
        assert r["members"], f"rep {r['rep']}: no group, got {r['value']}"
        assert "fail_fast" in r["message"], r["message"]
        assert 1 <= len(r["members"]) <= len(r["failing"])
        assert {m["index"] for m in r["members"]} <= set(r["failing"])
        for m in r["members"]:
            check_kind(m, kind, m["index"])
        assert r["seconds"] < 30 and r["after"] == 10


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", SIZES)
def test_spmd_region_has_exactly_k_members(launch_id, kind, size):
    for r in records(launch_id, "spmd", "run", kind, size):
        failing, ranks = r["failing"], r["ranks"]
        assert r["members"] is not None, f"rep {r['rep']}: no group, got {r['value']}"
        assert [m["region_rank"] for m in r["members"]] == failing, f"rep {r['rep']}"
        assert r["message"] == (f"{len(failing)} of {len(ranks)} ranks of the SPMD region of "
                                "region failed"), r["message"]
        for m in r["members"]:
            where = m["region_rank"]
            check_kind(m, kind, where)
            assert m["rank"] == ranks[where]
            check_where(m, launch_id, r["pid0"], "region(")
            assert (f"SPMD region rank {where} of {len(ranks)} (world rank {ranks[where]})"
                    in m["notes"]), m["notes"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", SIZES)
def test_spmd_failures_after_a_collective_are_at_least_one(launch_id, kind, size):
    # After a barrier, a failing rank may see another's cancellation first (it is then
    # released, not a failure: docs/spmd.md): at least one of the K, never another rank.
    for r in records(launch_id, "spmd", "late", kind, size):
        assert r["members"], f"rep {r['rep']}: no group, got {r['value']}"
        assert 1 <= len(r["members"]) <= len(r["failing"])
        assert {m["region_rank"] for m in r["members"]} <= set(r["failing"])
        for m in r["members"]:
            check_kind(m, kind, m["region_rank"])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", SIZES)
def test_pipeline_collect_all_has_exactly_k_members(launch_id, kind, size):
    for r in records(launch_id, "pipeline", "collect_all", kind, size):
        failing = r["failing"]
        assert r["members"] is not None, f"rep {r['rep']}: no group, got {r['value']}"
        assert [m["index"] for m in r["members"]] == failing, f"rep {r['rep']}"
        assert r["message"] == f"pipeline: {len(failing)} of {N_TASKS} items failed"
        for m in r["members"]:
            check_kind(m, kind, m["index"])
            assert m["stage"] == 1
            assert (f"pipeline stage 2 of 2 (stage_fails), item #{m['index']}"
                    in m["notes"]), m["notes"]
            check_where(m, launch_id, r["pid0"], "stage_fails(", f", input #{m['index']}")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", SIZES)
def test_pipeline_fail_fast_raises_at_least_one_member(launch_id, kind, size):
    for r in records(launch_id, "pipeline", "fail_fast", kind, size):
        assert r["members"], f"rep {r['rep']}: no group, got {r['value']}"
        assert "fail_fast stopped the pipeline" in r["message"], r["message"]
        assert 1 <= len(r["members"]) <= len(r["failing"])
        assert {m["index"] for m in r["members"]} <= set(r["failing"])
        for m in r["members"]:
            check_kind(m, kind, m["index"])
        assert r["seconds"] < 30


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", SIZES)
def test_proxy_calls_fail_exactly_on_k_calls(launch_id, kind, size):
    for r in records(launch_id, "proxy", "call", kind, size):
        outcomes = r["outcomes"]
        failed = [x for x, o in enumerate(outcomes) if isinstance(o, dict)]
        assert failed == r["failing"], f"rep {r['rep']}: {outcomes}"
        for x, o in enumerate(outcomes):
            if x in failed:
                check_kind(o, kind, x)
                assert o["rank"] == r["owner"]
                assert f"proxy call: Thrower.throw('{kind}', {x})" in o["notes"][-2]
            else:
                assert o == x
        check_kind(r["direct"], kind, 1)
        assert r["after"] == 5, "the owner must go on serving after a failed call"
