"""Serial mode: the same program in one process, deterministic, still pickling, and
debuggable: a failed task's exception carries the closure's own traceback, so
`python3 -m pdb app.py` stops at the line of the closure that raised.

Runs `python3 app.py` (one simulated worker) and PARC_SERIAL=3 (three simulated workers),
with MPI runs only where a test contrasts the two.
"""

import os
import re
from pathlib import Path

import pytest

from conftest import SERIAL_MODES, app, report






def line_of(source, text):
    """The 1-based number of the one line of `source` that contains `text`."""
    found = [i for i, line in enumerate(source.splitlines(), 1) if text in line]
    assert len(found) == 1, (text, found)
    return found[0]


# -- deterministic order ---------------------------------------------------------------------

ORDER = r'''
ORDER = []  # serial mode: the tasks run in this process, so they can record their order


@parc.closure
def record(tag):
    ORDER.append(tag)
    if isinstance(tag, int) and tag % 4 == 1:
        raise ValueError(tag)
    return tag


def main():
    out = {}
    with parc.TaskFarm(policy="collect_all") as farm:
        futures = [farm.submit(record, f"s{i}") for i in range(5)]
        futures += farm.submit_batch(record, [(f"b{i}",) for i in range(5)])
        out["completed"] = [f.result() for f in parc.as_completed(futures)]
        try:
            list(farm.map(record, range(24)))
        except parc.ParallelException as group:
            out["failures"] = [[e.parc_index, e.parc_rank, e.parc_task, e.parc_pid]
                               for e in group.exceptions]
    out["order"] = ORDER
    out["pid"] = os.getpid()
    out["workers"] = parc.workers()
    emit(out)


parc.run(main)
'''


@pytest.mark.parametrize("mode", SERIAL_MODES)
def test_task_order_is_deterministic(launch, mode):
    first = report(launch(app(ORDER), **mode))
    second = report(launch(app(ORDER), **mode))
    for r in (first, second):
        pids = {pid for *_, pid in r["failures"]}
        assert pids == {r["pid"]}, "serial tasks run in the manager's process"
        del r["pid"]
        r["failures"] = [f[:3] for f in r["failures"]]
        r["completed"] = sorted(r["completed"])  # see test_as_completed_order_is_deterministic
    assert first == second, "two serial runs of the same program differ"
    r = first
    submitted = [f"s{i}" for i in range(5)] + [f"b{i}" for i in range(5)] + list(range(24))
    assert sorted(map(str, r["order"])) == sorted(map(str, submitted)), "every task ran once"
    assert r["workers"] == mode.get("serial", 1)
    assert [f[0] for f in r["failures"]] == [1, 5, 9, 13, 17, 21]
    ranks = {rank for _, rank, _ in r["failures"]}
    if mode.get("serial", 1) == 1:
        assert r["order"] == submitted, "one simulated worker runs tasks in submission order"
        assert ranks == {1}
    else:
        assert ranks == {1, 2, 3}, "the simulated workers share the tasks"


def test_as_completed_order_is_deterministic(launch):
    first = report(launch(app(ORDER)))
    runs = [report(launch(app(ORDER)))["completed"] for _ in range(3)]
    assert all(run == first["completed"] for run in runs), runs


# -- the serializer is still in the way ----------------------------------------------------------

@pytest.mark.parametrize("mode", SERIAL_MODES)
def test_serial_mode_still_pickles(launch, mode):
    r = report(launch(app(r'''
        RAISED = []


        @parc.closure
        def mutate(items):
            items.append("added by the task")
            return items


        @parc.closure
        def echo(x):
            return x


        @parc.closure
        def fail(x):
            error = ValueError(f"failed {x}")
            RAISED.append(error)
            raise error


        @parc.closure
        def make_lock(x):
            return threading.Lock()


        @parc.closure
        def local_class(x):
            class Local(Exception):
                pass
            raise Local("not importable")


        def main():
            out = {}
            with parc.TaskFarm(policy="collect_all") as farm:
                mine = ["mine"]
                returned = farm.submit(mutate, mine).result()
                out["argument_copied"] = [mine, returned]
                value = {"a": [1, 2]}
                out["result_is_copy"] = farm.submit(echo, value).result() is not value
                e = farm.submit(fail, 1).exception()
                out["exception_rebuilt"] = [type(e).__name__, str(e), e is not RAISED[0],
                                            len(RAISED)]
                e = farm.submit(make_lock, 1).exception()
                out["result_unpicklable"] = [type(e).__name__,
                                             any("cannot be pickled" in n for n in e.__notes__)]
                e = farm.submit(local_class, 1).exception()
                out["local_class"] = [isinstance(e, parc.RemoteError), e.type_name]
                try:
                    farm.submit(echo, threading.Lock())
                    out["argument_unpicklable"] = "accepted"
                except TypeError as error:
                    out["argument_unpicklable"] = str(error)
                captured = []
                out["lambda_by_value"] = farm.submit(lambda: captured.append(1) or
                                                     len(captured)).result()
                out["captured_after"] = captured
            emit(out)


        parc.run(main)
    '''), **mode))
    assert r["argument_copied"] == [["mine"], ["mine", "added by the task"]]
    assert r["result_is_copy"] is True
    assert r["exception_rebuilt"] == ["ValueError", "failed 1", True, 1]
    assert r["result_unpicklable"] == ["TypeError", True]
    assert r["local_class"] == [True, "__main__.local_class.<locals>.Local"]
    assert "argument 1 of echo" in r["argument_unpicklable"]
    assert r["lambda_by_value"] == 1 and r["captured_after"] == [], \
        "a lambda is sent by value: its captured list is a copy"


# -- the closure's own traceback -------------------------------------------------------------

TRACEBACK = r'''
@parc.closure
def boom(x):
    y = x * 2
    raise ValueError(f"boom {x}")


def main():
    with parc.TaskFarm() as farm:
        try:
            farm.submit(boom, 42).result()
        except ValueError as e:
            last = traceback.extract_tb(e.__traceback__)[-1]
            emit({"name": last.name, "line": last.line, "file": last.filename,
                  "frames": [f.name for f in traceback.extract_tb(e.__traceback__)]})


parc.run(main)
'''


@pytest.mark.parametrize("mode", [dict(), dict(serial=3), dict(ranks=2)],
                         ids=["serial", "serial3", "np2"])
def test_serial_exceptions_carry_the_closure_traceback(launch, mode, tmp_path):
    r = report(launch(app(TRACEBACK), **mode))
    if "ranks" in mode:
        # Over MPI the closure's frames stay on the worker: only the note has them.
        assert "boom" not in r["frames"]
    else:
        assert r["name"] == "boom", r
        assert r["line"] == 'raise ValueError(f"boom {x}")'
        assert r["file"] == str(tmp_path / "app.py")
        assert r["frames"][0] == "main"


PDB = r'''
@parc.closure
def ok(x):
    return x


@parc.closure
def boom(x):
    y = x * 2
    raise ValueError(f"boom {x}")


def main():
    how = sys.argv[1]
    with parc.TaskFarm(policy="collect_all" if how == "collect_all" else "fail_fast") as farm:
        if how == "future":
            farm.submit(ok, 1).result()
            farm.submit(boom, 42).result()
        else:
            list(farm.map(boom if how == "map" else ok, [42]))
            list(farm.map(lambda x: boom(x) if x else x, [0, 42, 0, 7]))


parc.run(main)
'''


@pytest.mark.parametrize("mode", SERIAL_MODES)
@pytest.mark.parametrize("how", ["future", "map", "collect_all"])
def test_pdb_post_mortem_stops_in_the_closure(launch, mode, how, tmp_path):
    source = app(PDB)
    line = line_of(source, 'raise ValueError(f"boom {x}")')
    result = launch(source, python_args=["-m", "pdb"], args=[how], stdin="c\np x, y\nq\n",
                    timeout=60, **mode)
    out = result.stdout
    assert "Uncaught exception. Entering post mortem debugging" in out, result.output
    post_mortem = out.split("Entering post mortem debugging", 1)[1]
    app_path = tmp_path / "app.py"
    assert f"> {app_path}({line})boom()" in post_mortem, result.output
    assert '-> raise ValueError(f"boom {x}")' in post_mortem
    assert "(Pdb) (42, 84)" in post_mortem, "the closure's locals are visible in pdb"
    if how == "future":
        assert "ValueError: boom 42" in result.output
    else:
        assert "ParallelException" in result.output, result.output


# -- interrupts and timeouts -----------------------------------------------------------------

@pytest.mark.parametrize("mode", SERIAL_MODES)
def test_ctrl_c_in_a_serial_task_interrupts_the_program(launch, mode):
    r = report(launch(app(r'''
        import signal


        @parc.closure
        def interrupted(x):
            os.kill(os.getpid(), signal.SIGINT)  # as if Ctrl-C were pressed in the task
            time.sleep(5)
            return x


        def main():
            start = time.monotonic()
            with parc.TaskFarm(policy="collect_all") as farm:
                future = farm.submit(interrupted, 1)
                try:
                    future.result()
                    outcome = "returned"
                except KeyboardInterrupt:
                    outcome = "KeyboardInterrupt"
                except Exception as e:
                    outcome = f"task failure {type(e).__name__}"
            emit({"outcome": outcome, "seconds": time.monotonic() - start})


        parc.run(main)
    '''), timeout=60, **mode))
    assert r["outcome"] == "KeyboardInterrupt"
    assert r["seconds"] < 4


SERIAL_TIMEOUT_NEIGHBOUR = r'''
@parc.closure
def nap(x, seconds):
    time.sleep(seconds)
    return x


def main():
    with parc.TaskFarm(timeout=0.5, policy=sys.argv[1]) as farm:
        slow = farm.submit(nap, "slow", 1.0)
        quick = farm.submit(nap, "quick", 0.0)
        parc.wait([slow, quick])  # fail_fast may cancel quick once slow times out
        states = []
        for f in (slow, quick):
            if f.cancelled():
                states.append("cancelled")
            elif f.exception() is not None:
                states.append(type(f.exception()).__name__)
            else:
                states.append(f.result())
    emit(states)


parc.run(main)
'''


def test_serial_timeout_is_measured_per_task(launch):
    r = report(launch(app(SERIAL_TIMEOUT_NEIGHBOUR), serial=3, args=["collect_all"]))
    assert r == ["TaskTimeout", "quick"]


def test_serial_fail_fast_timeout_does_not_time_out_its_neighbour(launch):
    r = report(launch(app(SERIAL_TIMEOUT_NEIGHBOUR), serial=3, args=["fail_fast"]))
    assert r[0] == "TaskTimeout"
    assert r[1] in ("quick", "cancelled"), r


# -- a task that crashes the process ----------------------------------------------------------

CRASHED = re.compile(r"^parc: rank (\d+) \(host [^,]+, pid \d+\) crashed \(signal 11\) while "
                     r"running task (\d+): (.*)$", re.M)
LIBRARY = Path(os.environ.get("PARC_BUILD_DIR", "build")) / "tests" / "libparc_test_closures.so"


@pytest.mark.parametrize("mode", SERIAL_MODES)
def test_a_task_that_crashes_the_process_is_named(launch, mode):
    result = launch(app(r'''
        import ctypes


        @parc.closure
        def crash(x):
            if x == 3:
                ctypes.string_at(0)  # reads address 0: SIGSEGV
            return x


        def main():
            with parc.TaskFarm() as farm:
                print(list(farm.map(crash, range(5))))


        parc.run(main)
    '''), **mode, timeout=60)
    assert result.returncode != 0, result.output
    found = CRASHED.findall(result.stderr)
    assert len(found) == 1, result.stderr
    rank, _, call = found[0]
    assert 1 <= int(rank) <= (mode.get("serial") or 1)
    assert call == "crash(...)"
    # faulthandler's Python stack, from the closure's line down to main.
    assert "Fatal Python error: Segmentation fault" in result.stderr
    assert re.search(r'File ".*app\.py", line \d+ in crash\n', result.stderr), result.stderr
    assert re.search(r'File ".*app\.py", line \d+ in main\n', result.stderr), result.stderr


def test_a_cpp_task_that_crashes_the_process_is_named(launch):
    result = launch(f"""
import parc
parc.load_library({str(LIBRARY)!r})


def main():
    with parc.TaskFarm() as farm:
        print(farm.submit(parc.cpp_closure("crash"), 0).result())
        print(farm.submit(parc.cpp_closure("crash"), 1).result())


parc.run(main)
""", timeout=60)
    assert result.returncode != 0, result.output
    assert result.stdout.splitlines() == ["0"], result.output
    found = CRASHED.findall(result.stderr)
    assert [(rank, call) for rank, _, call in found] == [("1", "crash")], result.stderr
