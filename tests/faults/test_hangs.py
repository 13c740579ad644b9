"""A hung task (an endless loop, a worker that SIGSTOPs itself) in the farm, an SPMD region
and a pipeline: the manager's timeout reports the task and the rank within about the
timeout, the other tasks' results still arrive, and the job then ends (after
PARC_SHUTDOWN_GRACE) with a non-zero status, a message naming the stuck rank, and no
process left behind (SIGSTOPped ones included).

Each case prints `MEASURED {...}` with its detection time: pytest -s shows them.
"""

import subprocess
import time
import uuid

import pytest

from conftest import _run, app, reports

TIMEOUT = 1.0  # the manager's per-task / per-region timeout, seconds
GRACE = 2  # PARC_SHUTDOWN_GRACE
SLACK = 15  # detection may take this much longer than the timeout on a loaded machine

HANG = r'''
import signal

CASE, HOW, TIMEOUT = sys.argv[1], sys.argv[2], float(sys.argv[3])


def hang():
    if HOW == "loop":
        while True:  # pure Python, never a parc call
            pass
    os.kill(os.getpid(), signal.SIGSTOP)  # the whole worker process stops
    return "woke up"


@parc.closure
def farm_task(x):
    if x == 0:
        hang()
    time.sleep(0.05)
    return x * 10


@parc.closure
def region(ctx):
    if ctx.rank == 0:
        hang()
    ctx.barrier()  # the others wait for region rank 0 here, and are released
    return ctx.rank


def stage(x):
    if x == 0:
        hang()
    time.sleep(0.05)
    return x * 10


def main():
    out = {"case": CASE, "how": HOW}
    start = time.monotonic()
    if CASE == "farm":
        with parc.TaskFarm(policy="collect_all", timeout=TIMEOUT) as farm:
            hung = farm.submit(farm_task, 0)
            others = [farm.submit(farm_task, x) for x in range(1, 7)]
            error = hung.exception()
            out["detected_after"] = time.monotonic() - start
            out["others"] = [f.result() for f in others]
    elif CASE == "spmd":
        try:
            parc.Spmd(timeout=TIMEOUT).run(region)
            error = None
        except parc.ParallelException as group:
            out["members"] = len(group.exceptions)
            error = group.exceptions[0]
        out["detected_after"] = time.monotonic() - start
        with parc.TaskFarm() as farm:  # workers outside the stuck one still serve
            out["others"] = sorted(farm.map(abs, range(-3, 0)))
    else:
        got = []
        try:
            pipe = parc.Pipeline([parc.Stage(stage, workers=2)], policy="collect_all",
                                 timeout=TIMEOUT)
            for value in pipe.run(range(7)):
                got.append(value)
            error = None
        except parc.ParallelException as group:
            out["members"] = len(group.exceptions)
            error = group.exceptions[0]
        out["detected_after"] = time.monotonic() - start
        out["others"] = got
    out["error"] = None if error is None else {
        "type": type(error).__name__, "str": str(error),
        "is_task_timeout": isinstance(error, parc.TaskTimeout),
        "rank": getattr(error, "parc_rank", None), "task": getattr(error, "parc_task", None),
        "notes": list(getattr(error, "__notes__", []))}
    out["main_returned_at"] = time.monotonic()
    emit(out)


parc.run(main)
print("PARC RUN RETURNED", flush=True)
'''

CASES = [
    pytest.param("farm", "loop", 3, id="farm-loop-np3"),
    pytest.param("farm", "stop", 3, id="farm-sigstop-np3"),
    pytest.param("farm", "stop", 4, id="farm-sigstop-np4"),
    pytest.param("spmd", "loop", 3, id="spmd-loop-np3"),
    pytest.param("spmd", "stop", 4, id="spmd-sigstop-np4"),
    pytest.param("pipeline", "loop", 3, id="pipeline-loop-np3"),
    pytest.param("pipeline", "stop", 4, id="pipeline-sigstop-np4"),
]


def leftovers(name):
    found = subprocess.run(["pgrep", "-f", name], capture_output=True, text=True).stdout.split()
    return found


@pytest.mark.parametrize("case, how, ranks", CASES)
def test_a_hung_task_is_reported_and_the_job_ends(case, how, ranks, tmp_path):
    script = tmp_path / f"hang_{case}_{how}_{uuid.uuid4().hex[:12]}.py"
    script.write_text(app(HANG))
    start = time.monotonic()
    try:
        result = _run(script, ranks=ranks, args=[case, how, TIMEOUT], tmp_path=tmp_path,
                      timeout=30, env={"PARC_SHUTDOWN_GRACE": str(GRACE)})
    finally:
        ended = time.monotonic()
        time.sleep(0.5)  # mpiexec reaps its ranks as it exits; give stragglers a moment
        left = leftovers(script.name)
        for pid in left:  # never leave a stopped process behind, even when failing
            subprocess.run(["kill", "-KILL", pid])
    assert not left, f"processes left behind: {left}\n{result.output}"

    found = reports(result)
    assert len(found) == 1, result.output
    r = found[0]
    error = r["error"]
    assert error is not None, f"no timeout was reported\n{result.output}"
    assert error["type"] == "TaskTimeout" and error["is_task_timeout"], error
    # The task and the rank are named, in the message and in the note.
    stuck_rank = 1 if case != "pipeline" else error["rank"]
    assert error["rank"] == stuck_rank, error
    where = [n for n in error["notes"] if n.startswith(f"rank {stuck_rank} ")]
    assert where and f"task {error['task']}" in where[0], error["notes"]
    if case == "spmd":
        assert "ran longer than its timeout of 1 s" in error["str"], error["str"]
        assert "region ranks still running: 0" in error["str"], error["str"]
        assert r["members"] == 1
    else:
        assert f"task {error['task']} " in error["str"] and "timeout of 1" in error["str"], \
            error["str"]
        assert f"on rank {stuck_rank}" in error["str"], error["str"]
    # Detected in about the timeout (the SPMD region adds its 2 s grace for busy ranks).
    bound = TIMEOUT + SLACK + (2 if case == "spmd" else 0)
    assert TIMEOUT <= r["detected_after"] < bound, r["detected_after"]
    # The other tasks' results still arrive.
    if case == "farm":
        assert r["others"] == [x * 10 for x in range(1, 7)]
    elif case == "spmd":
        assert r["others"] == [1, 2, 3]
    else:
        assert r["others"] == [x * 10 for x in range(1, 7)]
        assert r["members"] == 1
    # The job ends: parc.run waits PARC_SHUTDOWN_GRACE for the stuck rank, then aborts
    # with a non-zero status, naming it.
    assert result.returncode != 0, result.output
    assert "PARC RUN RETURNED" not in result.stdout, result.output
    what = f"SPMD region {error['task']}" if case == "spmd" else f"task {error['task']}"
    assert f"rank {stuck_rank} is still running {what}, which timed out; ending the job" \
        in result.stderr, result.output
    # parc ended the job on purpose: no watcher reports the ranks the launcher then kills.
    assert "died while" not in result.stderr, result.output
    print(f"MEASURED {{'case': '{case}-{how}-np{ranks}', 'detected_after': "
          f"{r['detected_after']:.2f}, 'launch_seconds': {ended - start:.1f}}}")
