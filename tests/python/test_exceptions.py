"""Remote failures reach the manager as the user's own exceptions.

Every app here is a small script run as a real program: serially, with PARC_SERIAL=3,
and under mpiexec.mpich -n 2 / -n 4 (the `mode` fixture). The app prints what it caught
as `REPORT {json}` lines (see `describe` in PRELUDE); the tests check those facts:
type, message, chain, PEP 678 notes ("rank R (host H, pid P), task T: fn(args)",
"remote traceback: ..."), the parc_* attributes, and parc.RemoteError for what cannot be
rebuilt.
"""

import re
import socket

import pytest

from conftest import app as conftest_app, is_mpi, report, workers_of


DESCRIBE = r'''
def describe(e):
    """The facts of one caught exception, as JSON-able data."""
    if e is None:
        return None
    return {
        "type": f"{type(e).__module__}.{type(e).__qualname__}",
        "str": str(e),
        "args": [repr(a) for a in e.args],
        "notes": list(getattr(e, "__notes__", [])),
        "rank": getattr(e, "parc_rank", None),
        "task": getattr(e, "parc_task", None),
        "host": getattr(e, "parc_host", None),
        "pid": getattr(e, "parc_pid", None),
        "index": getattr(e, "parc_index", None),
        "remote_error": isinstance(e, parc.RemoteError),
        "type_name": getattr(e, "type_name", None),
        "message": getattr(e, "message", None),
        "args_repr": getattr(e, "args_repr", None),
        "traceback_text": getattr(e, "traceback_text", None),
        "cause": describe(e.__cause__),
        "context": describe(e.__context__),
        "suppress_context": e.__suppress_context__,
    }

'''


def app(body):
    return conftest_app(body, helpers=DESCRIBE)





WHERE = re.compile(r"^rank (\d+) \(host (.+), pid (\d+)\), task (\d+): (.*)$", re.DOTALL)


def where_note(member):
    """The "rank R (host H, pid P), task T: call" note of a member, parsed."""
    found = [WHERE.match(note) for note in member["notes"]]
    found = [f for f in found if f]
    assert len(found) == 1, member["notes"]
    rank, host, pid, task, call = found[0].groups()
    return int(rank), host, int(pid), int(task), call


def remote_traceback_note(member):
    found = [n for n in member["notes"] if n.startswith("remote traceback:\n")]
    assert len(found) == 1, member["notes"]
    return found[0]


def check_origin(member, mode, manager_pid, call):
    """The note and attributes saying where a failure happened agree, and are right."""
    rank, host, pid, task, shown = where_note(member)
    assert shown == call
    assert (member["rank"], member["host"], member["pid"], member["task"]) == (
        rank, host, pid, task)
    assert 1 <= rank <= workers_of(mode), member
    assert host == socket.gethostname()
    if is_mpi(mode):
        assert pid != manager_pid, "an MPI task ran in the manager's process"
    else:
        assert pid == manager_pid, "a serial task did not run in the manager's process"


# -- some of many tasks fail ---------------------------------------------------------

SOME_FAIL = r'''
LOG = sys.argv[1]


@parc.closure
def check(x):
    with open(LOG, "a") as log:
        log.write(f"{x}\n")
    if x % 5 == 3:
        raise ValueError(f"bad input {x}")
    return x * x


def main():
    with parc.TaskFarm(policy="collect_all") as farm:
        try:
            values = list(farm.map(check, range(20)))
        except parc.ParallelException as group:
            emit({"group": type(group).__name__,
                  "is_exception_group": isinstance(group, ExceptionGroup),
                  "message": group.message,
                  "members": [describe(e) for e in group.exceptions],
                  "manager_pid": os.getpid(),
                  "ran": sorted(int(line) for line in open(LOG)),
                  "after": farm.submit(check, 4).result()})
        else:
            emit({"group": None, "values": values})


parc.run(main)
'''


def test_collect_all_runs_every_task_and_sorts_failures_by_input(launch, mode, tmp_path):
    log = tmp_path / "ran.log"
    r = report(launch(app(SOME_FAIL), args=[log], **mode))
    assert r["group"] == "ParallelException" and r["is_exception_group"], r
    assert "4 of 20" in r["message"], r["message"]
    members = r["members"]
    assert [m["index"] for m in members] == [3, 8, 13, 18]
    assert [m["type"] for m in members] == ["builtins.ValueError"] * 4
    assert [m["str"] for m in members] == ["bad input 3", "bad input 8", "bad input 13",
                                           "bad input 18"]
    for m in members:
        check_origin(m, mode, r["manager_pid"], f"check({m['index']}), input #{m['index']}")
        tb = remote_traceback_note(m)
        assert "Traceback (most recent call last)" in tb
        assert 'raise ValueError(f"bad input {x}")' in tb
        assert ", in check" in tb
        assert not m["remote_error"]
    # Short inputs share tasks (a map sends chunks of them): ids grow with the input.
    tasks = [m["task"] for m in members]
    assert tasks == sorted(tasks) and tasks[0] < tasks[-1], tasks
    # collect_all: every input ran, the failing ones included, and the farm still works.
    assert r["ran"] == list(range(20))
    assert r["after"] == 16


FAIL_FAST = r'''
LOG = sys.argv[1]


@parc.closure
def slow_check(x):
    with open(LOG, "a") as log:
        log.write(f"{x}\n")
    time.sleep(0.02)
    if x == 5:
        raise ValueError("five is bad")
    return x


def main():
    with parc.TaskFarm() as farm:  # fail_fast is the default
        seen = []
        try:
            for value in farm.map(slow_check, range(300)):
                seen.append(value)
        except parc.ParallelException as group:
            emit({"message": group.message,
                  "members": [describe(e) for e in group.exceptions],
                  "seen": seen,
                  "ran": sorted(int(line) for line in open(LOG)),
                  "manager_pid": os.getpid(),
                  "after": farm.submit(slow_check, 7).result()})


parc.run(main)
'''


def test_fail_fast_raises_at_the_first_failure_and_cancels_the_rest(launch, mode, tmp_path):
    log = tmp_path / "ran.log"
    r = report(launch(app(FAIL_FAST), args=[log], **mode))
    assert "fail_fast" in r["message"], r["message"]
    [member] = r["members"]
    assert member["type"] == "builtins.ValueError" and member["str"] == "five is bad"
    assert member["index"] == 5
    check_origin(member, mode, r["manager_pid"], "slow_check(5), input #5")
    # As concurrent.futures: every result before the failed input is yielded, in order.
    assert r["seen"] == [0, 1, 2, 3, 4]
    # The inputs after it that no worker had were dropped: far from all 300 ran.
    assert set(range(6)) <= set(r["ran"])
    assert len(r["ran"]) < 60, f"{len(r['ran'])} tasks ran after a fail_fast failure"
    if mode == {}:  # one worker, in order: exactly inputs 0..5 ran
        assert r["ran"] == [0, 1, 2, 3, 4, 5]
    assert r["after"] == 7, "the farm must stay usable after a failure"


FAIL_FAST_FUTURES = r'''
@parc.closure
def step(x):
    time.sleep(0.05)
    if x == 1:
        raise KeyError(x)
    return x


def states(futures):
    return ["cancelled" if f.cancelled() else
            (type(f.exception()).__name__ if f.exception() else f.result())
            for f in futures]


def main():
    with parc.TaskFarm() as farm:
        batch = farm.submit_batch(step, [(i,) for i in range(6)])
        parc.wait(batch)
        # Separate submits are independent, as in concurrent.futures: nothing is cancelled.
        submits = [farm.submit(step, i) for i in range(6)]
        concurrent.futures.wait(submits)
        emit({"batch": states(batch), "submits": states(submits)})


parc.run(main)
'''


@pytest.mark.parametrize("mode", [dict(), dict(ranks=2)], ids=["serial", "np2"])
def test_fail_fast_cancels_the_rest_of_a_batch_not_other_submits(launch, mode):
    # One worker: task 0 succeeds, task 1 fails, tasks 2..5 have not started: cancelled.
    r = report(launch(app(FAIL_FAST_FUTURES), **mode))
    assert r["batch"] == [0, "KeyError"] + ["cancelled"] * 4
    assert r["submits"] == [0, "KeyError", 2, 3, 4, 5]


def test_future_result_raises_the_task_exception_itself(launch, mode):
    r = report(launch(app(r'''
        @parc.closure
        def parse(text, base=10):
            return int(text, base)


        def main():
            with parc.TaskFarm(policy="collect_all") as farm:
                future = farm.submit(parse, "12x", base=16)
                try:
                    future.result()
                except Exception as e:
                    raised = e
                emit({"raised": describe(raised),
                      "is_group": isinstance(raised, ExceptionGroup),
                      "exception_is_raised": future.exception() is raised,
                      "done": future.done(), "cancelled": future.cancelled(),
                      "ok": farm.submit(parse, "ff", 16).exception(),
                      "manager_pid": os.getpid()})


        parc.run(main)
    '''), **mode))
    raised = r["raised"]
    assert not r["is_group"]
    assert raised["type"] == "builtins.ValueError"
    assert raised["str"] == "invalid literal for int() with base 16: '12x'"
    assert raised["index"] is None, "a submitted task is not an input of map"
    check_origin(raised, mode, r["manager_pid"], "parse('12x', base=16)")
    assert "int(text, base)" in remote_traceback_note(raised)
    assert r["exception_is_raised"] and r["done"] and not r["cancelled"]
    assert r["ok"] is None


def test_except_star_splits_the_group_by_type(launch):
    r = report(launch(app(r'''
        @parc.closure
        def pick(x):
            if x % 3 == 0:
                raise KeyError(x)
            if x % 3 == 1:
                raise ValueError(x)
            return x


        def main():
            caught = {}
            with parc.TaskFarm(policy="collect_all") as farm:
                try:
                    list(farm.map(pick, range(9)))
                except* KeyError as group:
                    caught["KeyError"] = (type(group).__name__,
                                          [e.parc_index for e in group.exceptions])
                except* ValueError as group:
                    caught["ValueError"] = (type(group).__name__,
                                            [e.parc_index for e in group.exceptions])
            emit(caught)


        parc.run(main)
    '''), ranks=2))
    assert r == {"KeyError": ["ParallelException", [0, 3, 6]],
                 "ValueError": ["ParallelException", [1, 4, 7]]}


# -- exception types ---------------------------------------------------------------------

HELPER_MODULE = '''
class HelperError(ValueError):
    """Defined in a module next to the script, importable on every rank."""

    def __init__(self, code, detail="none"):
        super().__init__(code, detail)
        self.code = code
        self.detail = detail
'''


def test_custom_exception_types_keep_their_type_and_attributes(launch, mode, tmp_path):
    (tmp_path / "helper_errors.py").write_text(HELPER_MODULE)
    r = report(launch(app(r'''
        import helper_errors


        class AppError(Exception):
            def __init__(self, message, code=0):
                super().__init__(message, code)
                self.code = code


        @parc.closure
        def app_fails(x):
            error = AppError(f"app {x}", code=x)
            error.extra = {"payload": [x, x + 1]}
            raise error


        @parc.closure
        def helper_fails(x):
            raise helper_errors.HelperError(x, detail="from the helper")


        def main():
            out = {}
            with parc.TaskFarm(policy="collect_all") as farm:
                e = farm.submit(app_fails, 7).exception()
                out["app"] = describe(e)
                out["app_is_class"] = type(e) is AppError
                out["app_attrs"] = [e.code, e.extra]
                e = farm.submit(helper_fails, 9).exception()
                out["helper"] = describe(e)
                out["helper_is_class"] = type(e) is helper_errors.HelperError
                out["helper_attrs"] = [e.code, e.detail]
                try:
                    list(farm.map(helper_fails, [1, 2]))
                except* ValueError as group:  # HelperError is a ValueError
                    out["star"] = [type(m).__name__ for m in group.exceptions]
            emit(out)


        parc.run(main)
    '''), **mode))
    assert r["app"]["type"] == "__main__.AppError" and r["app_is_class"]
    assert r["app"]["str"] == "('app 7', 7)"
    assert r["app_attrs"] == [7, {"payload": [7, 8]}]
    assert r["helper"]["type"] == "helper_errors.HelperError" and r["helper_is_class"]
    assert r["helper_attrs"] == [9, "from the helper"]
    assert r["star"] == ["HelperError", "HelperError"]
    for key in ("app", "helper"):
        assert not r[key]["remote_error"]
        where_note(r[key])


UNREBUILDABLE = r'''
class NeedsTwo(Exception):
    def __init__(self, a, b):  # pickle calls NeedsTwo(message): TypeError
        super().__init__(f"{a}/{b}")


class Locked(Exception):
    def __init__(self, message):
        super().__init__(message)
        self.lock = threading.Lock()


@parc.closure
def needs_two(x):
    raise NeedsTwo(x, 2)


@parc.closure
def locked(x):
    raise Locked(f"locked {x}")


@parc.closure
def local_class(x):
    class Local(Exception):
        pass
    raise Local(f"local {x}")


@parc.closure
def lock_in_args(x):
    raise ValueError("with a lock", threading.Lock())


def main():
    out = {}
    with parc.TaskFarm(policy="collect_all") as farm:
        for fn in (needs_two, locked, local_class, lock_in_args):
            out[fn.__name__] = describe(farm.submit(fn, 1).exception())
        try:
            list(farm.map(needs_two, range(3)))
        except* parc.RemoteError as group:
            out["map"] = [describe(e) for e in group.exceptions]
    emit(out)


parc.run(main)
'''


def test_unrebuildable_exceptions_become_remote_errors(launch, mode):
    r = report(launch(app(UNREBUILDABLE), **mode))
    expected = {
        "needs_two": ("__main__.NeedsTwo", "1/2", "('1/2',)",
                      "missing 1 required positional argument", "raise NeedsTwo(x, 2)"),
        "locked": ("__main__.Locked", "locked 1", "('locked 1',)",
                   "cannot pickle '_thread.lock' object", "raise Locked("),
        "local_class": ("__main__.local_class.<locals>.Local", "local 1", "('local 1',)",
                        "Local", 'raise Local(f"local {x}")'),
        "lock_in_args": ("builtins.ValueError", "('with a lock', <unlocked _thread.lock",
                         "('with a lock', <unlocked _thread.lock",
                         "cannot pickle '_thread.lock' object", "raise ValueError("),
    }
    for name, (type_name, message, args_repr, why, line) in expected.items():
        e = r[name]
        assert e["remote_error"] and e["type"] == "parc.RemoteError", (name, e)
        assert e["type_name"] == type_name, name
        assert e["message"].startswith(message), (name, e["message"])
        assert e["str"].startswith(f"{type_name}: {message}"), (name, e["str"])
        assert e["args_repr"].startswith(args_repr), (name, e["args_repr"])
        assert line in e["traceback_text"], (name, e["traceback_text"])
        rebuilt = [n for n in e["notes"] if n.startswith("rebuilt as parc.RemoteError: ")]
        assert len(rebuilt) == 1 and why in rebuilt[0], (name, e["notes"])
        where_note(e)
        assert line in remote_traceback_note(e)
    assert [m["index"] for m in r["map"]] == [0, 1, 2]
    assert [m["type_name"] for m in r["map"]] == ["__main__.NeedsTwo"] * 3


WORKER_ONLY = r'''
HERE = os.path.dirname(os.path.abspath(__file__))


@parc.closure
def raise_worker_only(x):
    import worker_only
    raise worker_only.WorkerOnly(f"only on workers {x}")


@parc.closure
def return_worker_only(x):
    import worker_only
    return worker_only.Thing(x)


def main():
    with parc.TaskFarm(policy="collect_all") as farm:
        raised = farm.submit(raise_worker_only, 7).exception()
        returned = farm.submit(return_worker_only, 8).exception()
        emit({"raised": describe(raised), "returned": describe(returned),
              "importable_here": "worker_only" in sys.modules})


if parc.rank() != 0:  # the module exists only on the worker ranks
    sys.path.insert(0, os.path.join(HERE, "workers_only"))
parc.run(main)
'''

WORKER_ONLY_MODULE = '''
class WorkerOnly(Exception):
    pass


class Thing:
    def __init__(self, x):
        self.x = x
'''


def _worker_only_app(tmp_path):
    folder = tmp_path / "workers_only"
    folder.mkdir()
    (folder / "worker_only.py").write_text(WORKER_ONLY_MODULE)
    return app(WORKER_ONLY)


def test_exception_class_importable_only_on_workers(launch, tmp_path):
    r = report(launch(_worker_only_app(tmp_path), ranks=2))
    assert not r["importable_here"]
    raised = r["raised"]
    assert raised["remote_error"]
    assert raised["type_name"] == "worker_only.WorkerOnly"
    assert raised["message"] == "only on workers 7"
    assert raised["str"] == "worker_only.WorkerOnly: only on workers 7"
    assert "raise worker_only.WorkerOnly(" in raised["traceback_text"]
    assert "worker_only.WorkerOnly: only on workers 7" in raised["traceback_text"]
    where_note(raised)
    # A result of a class the manager cannot import fails that task, saying so.
    returned = r["returned"]
    assert returned["type"] == "builtins.ModuleNotFoundError", returned
    assert "worker_only" in returned["str"]
    assert any("could not be unpickled" in n for n in returned["notes"]), returned["notes"]


def test_exception_class_importable_only_on_workers_says_why(launch, tmp_path):
    r = report(launch(_worker_only_app(tmp_path), ranks=2))
    notes = r["raised"]["notes"]
    assert any(n.startswith("rebuilt as parc.RemoteError: ") and "worker_only" in n
               for n in notes), notes


# -- chains ------------------------------------------------------------------------------

CHAINS = r'''
@parc.closure
def explicit(x):
    try:
        {}["missing"]
    except KeyError as e:
        raise ValueError("lookup failed") from e


@parc.closure
def implicit(x):
    try:
        1 / 0
    except ZeroDivisionError:
        raise RuntimeError("while dividing")


@parc.closure
def from_none(x):
    try:
        1 / 0
    except ZeroDivisionError:
        raise RuntimeError("hidden cause") from None


@parc.closure
def three_levels(x):
    try:
        try:
            [][1]
        except IndexError:
            raise KeyError("middle")
    except KeyError as e:
        raise ValueError("top") from e


@parc.closure
def unrebuildable_cause(x):
    class Inner(Exception):
        pass
    try:
        raise Inner("deep down")
    except Inner as e:
        raise ValueError("outer") from e


def main():
    out = {}
    with parc.TaskFarm(policy="collect_all") as farm:
        for fn in (explicit, implicit, from_none, three_levels, unrebuildable_cause):
            out[fn.__name__] = describe(farm.submit(fn, 0).exception())
        try:
            list(farm.map(explicit, [1, 2]))
        except parc.ParallelException as group:
            out["map"] = [describe(e) for e in group.exceptions]
    emit(out)


parc.run(main)
'''


def test_chained_exceptions_survive(launch, mode):
    r = report(launch(app(CHAINS), **mode))
    e = r["explicit"]
    assert (e["type"], e["str"]) == ("builtins.ValueError", "lookup failed")
    assert (e["cause"]["type"], e["cause"]["str"]) == ("builtins.KeyError", "'missing'")
    assert e["suppress_context"]
    assert "The above exception was the direct cause" in remote_traceback_note(e)

    e = r["implicit"]
    assert (e["type"], e["str"]) == ("builtins.RuntimeError", "while dividing")
    assert e["cause"] is None
    assert (e["context"]["type"], e["context"]["str"]) == ("builtins.ZeroDivisionError",
                                                         "division by zero")
    assert "During handling of the above exception" in remote_traceback_note(e)

    e = r["from_none"]
    assert e["cause"] is None
    assert e["context"] is None or e["suppress_context"], e
    assert "ZeroDivisionError" not in remote_traceback_note(e)

    e = r["three_levels"]
    assert e["type"] == "builtins.ValueError"
    assert (e["cause"]["type"], e["cause"]["str"]) == ("builtins.KeyError", "'middle'")
    assert e["cause"]["context"]["type"] == "builtins.IndexError"

    e = r["unrebuildable_cause"]
    assert (e["type"], e["str"]) == ("builtins.ValueError", "outer")
    assert e["cause"]["remote_error"], e["cause"]
    assert e["cause"]["type_name"] == "__main__.unrebuildable_cause.<locals>.Inner"
    assert e["cause"]["message"] == "deep down"

    assert [m["index"] for m in r["map"]] == [0, 1]
    assert all(m["cause"]["type"] == "builtins.KeyError" for m in r["map"])


# -- sys.exit, results and arguments that cannot travel ---------------------------------------

def test_sys_exit_in_a_task_is_a_failure_and_the_worker_keeps_serving(launch, mode):
    result = launch(app(r'''
        @parc.closure
        def quit_(code):
            sys.exit(code)


        @parc.closure
        def pid(x):
            return os.getpid(), x


        def main():
            with parc.TaskFarm(policy="collect_all") as farm:
                e = farm.submit(quit_, 3).exception()
                after = [farm.submit(pid, i).result() for i in range(5)]
                try:
                    list(farm.map(quit_, [0, 5]))
                except parc.ParallelException as group:
                    in_map = [describe(m) for m in group.exceptions]
                emit({"exit": describe(e), "exit_is_remote": isinstance(e, parc.RemoteError),
                      "after": after, "in_map": in_map, "workers": parc.workers()})
            print("main finished")


        parc.run(main)
        print("still alive after parc.run")
    '''), **mode)
    r = report(result)
    e = r["exit"]
    assert r["exit_is_remote"]
    assert e["type_name"] == "builtins.SystemExit"
    assert e["message"] == "the task called sys.exit(3)"
    assert "sys.exit(code)" in e["traceback_text"]
    where_note(e)
    assert [x for _, x in r["after"]] == [0, 1, 2, 3, 4]
    if r["workers"] == 1 and "ranks" in mode:
        # The one worker that ran sys.exit(3) still serves: it ran the next tasks.
        assert {p for p, _ in r["after"]} == {e["pid"]}
    assert [m["message"] for m in r["in_map"]] == ["the task called sys.exit(0)",
                                                   "the task called sys.exit(5)"]
    assert "main finished" in result.stdout
    assert result.returncode == 0


def test_unpicklable_result_fails_that_task_only(launch, mode):
    r = report(launch(app(r'''
        @parc.closure
        def make(kind):
            if kind == "lock":
                return threading.Lock()
            return kind


        def main():
            with parc.TaskFarm(policy="collect_all") as farm:
                futures = [farm.submit(make, k) for k in ("a", "lock", "b")]
                states = [describe(f.exception()) if f.exception() else f.result()
                          for f in futures]
                try:
                    list(farm.map(make, ["x", "lock", "y", "lock"]))
                except parc.ParallelException as group:
                    in_map = [describe(m) for m in group.exceptions]
            emit({"states": states, "in_map": in_map})


        parc.run(main)
    '''), **mode))
    first, failed, last = r["states"]
    assert (first, last) == ("a", "b")
    assert failed["type"] == "builtins.TypeError"
    assert "cannot pickle '_thread.lock' object" in failed["str"]
    assert any("the result of make('lock')" in n and "cannot be pickled" in n
               for n in failed["notes"]), failed["notes"]
    where_note(failed)
    assert [m["index"] for m in r["in_map"]] == [1, 3]
    assert all(m["type"] == "builtins.TypeError" for m in r["in_map"])


UNPICKLABLE_ARGUMENT = r'''
@parc.closure
def take(a, b=None, k=None):
    return a


def attempt(call):
    try:
        call()
    except TypeError as e:
        return str(e)
    except Exception as e:
        return f"not a TypeError: {type(e).__name__}: {e}"
    return None


def main():
    lock = threading.Lock()
    out = {}
    with parc.TaskFarm() as farm:
        if sys.argv[1] == "submit":
            out["positional"] = attempt(lambda: farm.submit(take, 1, lock))
            out["keyword"] = attempt(lambda: farm.submit(take, 1, k=lock))
        else:
            batch = farm.submit_batch(take, [(1,), (lock,), (3,)])
            out["batch"] = [batch[0].result(), str(batch[1].exception()), batch[2].result()]
            out["map"] = attempt(lambda: list(farm.map(take, [1, lock, 3])))
        out["after"] = farm.submit(take, 5).result()
        out["after_map"] = list(farm.map(take, [1, 2]))
    emit(out)


parc.run(main)
'''


@pytest.mark.parametrize("mode", [dict(), dict(ranks=2)], ids=["serial", "np2"])
def test_unpicklable_argument_is_refused_at_submit(launch, mode):
    r = report(launch(app(UNPICKLABLE_ARGUMENT), args=["submit"], **mode))
    assert "argument 2 of take" in r["positional"], r
    assert "cannot be pickled" in r["positional"] and "lock" in r["positional"]
    assert "keyword argument 'k' of take" in r["keyword"], r
    assert r["after"] == 5 and r["after_map"] == [1, 2]


@pytest.mark.parametrize("mode", [dict(), dict(ranks=2)], ids=["serial", "np2"])
def test_unpicklable_argument_in_batch_or_map_is_named(launch, mode):
    """map raises at once; submit_batch fails that input's future (the others run), as
    ProcessPoolExecutor does."""
    r = report(launch(app(UNPICKLABLE_ARGUMENT), args=["batch"], **mode))
    assert r["batch"][0] == 1 and r["batch"][2] == 3, r
    assert "argument 1 of take" in r["batch"][1] and "cannot be pickled" in r["batch"][1], r
    assert "argument 1 of take" in r["map"], r
    assert r["after"] == 5 and r["after_map"] == [1, 2]
