"""Bad user input: each mistake gets a message saying what is wrong and how to fix it, a
documented exit status, and never a hang (every launch runs under a timeout).

Python cases launch small apps; C++ cases launch tests/startup/startup_probe and
tests/faults/bad_input_probe from the build tree (PARC_BUILD_DIR).
"""

import os
import subprocess
from pathlib import Path

import pytest

from conftest import MPIEXEC, PYTHON, _run, app, report, reports

BUILD = Path(os.environ.get("PARC_BUILD_DIR", "build"))
STARTUP_PROBE = BUILD / "tests" / "startup_probe"
BAD_INPUT_PROBE = BUILD / "tests" / "faults" / "bad_input_probe"
OPENMPI = "mpiexec.openmpi"


@pytest.fixture
def launch(tmp_path):
    def launcher(script, **kwargs):
        kwargs.setdefault("tmp_path", tmp_path)
        return _run(script, **kwargs)
    return launcher


def run_program(command, env=None, timeout=60):
    environment = dict(os.environ)
    environment.pop("PARC_SERIAL", None)
    environment.update(env or {})
    done = subprocess.run(["timeout", "-k", "10", str(timeout), *map(str, command)],
                          capture_output=True, text=True, env=environment)
    assert done.returncode != 124, f"timed out: {command}\n{done.stdout}{done.stderr}"
    return done


# -- closures -----------------------------------------------------------------------------

def test_python_closure_declared_inside_a_function_is_refused(launch):
    r = report(launch(app(r'''
        def main():
            out = {}
            def nested(x):
                return x
            try:
                parc.closure(nested)
            except parc.UsageError as e:
                out["nested"] = str(e)
            try:
                with parc.TaskFarm() as farm:
                    farm.submit(parc.cpp_closure("no_such_closure"), 1).result()
            except parc.UsageError as e:
                out["cpp"] = str(e)
            emit(out)


        parc.run(main)
    '''), ranks=2, timeout=60))
    assert "main.<locals>.nested is defined inside a function" in r["nested"], r
    assert "Define it at module top level" in r["nested"]
    assert "no C++ closure named 'no_such_closure'" in r["cpp"], r


@pytest.mark.parametrize("mistake, says", [
    ("undeclared", "undeclared"),
    ("submit_after_shutdown", "shutdown"),
    ("map_after_shutdown", "shutdown"),
])
@pytest.mark.parametrize("ranks", [None, 3])
def test_cpp_usage_errors_are_clear_and_the_runtime_goes_on(mistake, says, ranks):
    command = [BAD_INPUT_PROBE] if ranks is None else [MPIEXEC, "-n", ranks, BAD_INPUT_PROBE]
    done = run_program(command, env={"PARC_BAD_INPUT": mistake})
    assert done.returncode == 0, done.stdout + done.stderr
    caught = [line for line in done.stdout.splitlines() if line.startswith("caught: ")]
    assert len(caught) == 1 and says in caught[0], done.stdout
    assert "after: 42" in done.stdout


@pytest.mark.parametrize("ranks, rank", [(2, 1), (4, 3)])
def test_cpp_closure_tables_that_differ_stop_the_job_with_status_2(ranks, rank):
    done = run_program([MPIEXEC, "-n", ranks, "env", f"PARC_PROBE_EXTRA_CLOSURE_ON_RANK={rank}",
                        STARTUP_PROBE])
    assert done.returncode == 2, done.stdout + done.stderr
    assert "probe ran" not in done.stdout
    assert f"rank {rank} has    extra_closure_on_one_rank : int (int)  (rank 0 lacks it)" \
        in done.stderr, done.stderr
    assert "Run the same executable on every rank" in done.stderr


# -- start-up: closure tables, PARC_SERIAL, the launcher ---------------------------------------

MISMATCH = r'''
if os.environ.get("PMI_RANK", "0") == os.environ["SKIP_RANK"]:
    pass
else:
    @parc.closure
    def only_some(x):
        return x


def main():
    print("MAIN RAN", flush=True)


parc.run(main)
'''


@pytest.mark.parametrize("ranks, skip", [(2, "1"), (3, "0"), (4, "3")])
def test_python_closure_tables_that_differ_stop_the_job_with_status_2(launch, ranks, skip):
    result = launch(app(MISMATCH), ranks=ranks, env={"SKIP_RANK": skip}, timeout=60)
    assert result.returncode == 2, result.output
    assert "MAIN RAN" not in result.stdout
    assert f"rank {skip} lacks" in result.stderr, result.stderr
    assert "py:__main__.only_some" in result.stderr
    assert "apply @parc.closure at module top level, unconditionally" in result.stderr


@pytest.mark.parametrize("value", ["four", "0", "-2", "1e3", "100000"])
def test_bad_parc_serial_stops_with_status_2(launch, value):
    result = launch(app("parc.run(lambda: print('MAIN RAN'))\n"), serial=value, timeout=30)
    assert result.returncode == 2, result.output
    assert "MAIN RAN" not in result.stdout and "Traceback" not in result.stderr
    assert (f"PARC_SERIAL={value} is not a number of simulated workers; set it to an integer "
            "from 1 to 4096") in result.stderr, result.stderr
    done = run_program([STARTUP_PROBE], env={"PARC_SERIAL": value}, timeout=30)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "probe ran" not in done.stdout
    assert f"PARC_SERIAL={value} is not a number of simulated workers" in done.stderr


def _openmpi():
    try:
        return subprocess.run([OPENMPI, "--version"], capture_output=True).returncode == 0
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not _openmpi(), reason="Open MPI's launcher is not installed")
@pytest.mark.parametrize("ranks", [2, 3])
def test_open_mpi_launcher_is_named_with_the_right_command(launch, tmp_path, ranks):
    script = tmp_path / "app.py"
    script.write_text(app("parc.run(lambda: print('MAIN RAN', parc.size()))\n"))
    env = dict(os.environ, PYTHONPATH=os.environ.get("PARC_PYTHONPATH", ""))
    env.pop("PARC_SERIAL", None)
    for command in ([OPENMPI, "--allow-run-as-root", "--oversubscribe", "-n", str(ranks),
                     PYTHON, str(script)],
                    [OPENMPI, "--allow-run-as-root", "--oversubscribe", "-n", str(ranks),
                     str(STARTUP_PROBE)]):
        done = subprocess.run(["timeout", "-k", "10", "60", *command], capture_output=True,
                              text=True, env=env)
        assert done.returncode not in (0, 124), done.stdout + done.stderr
        assert "MAIN RAN" not in done.stdout and "probe ran" not in done.stdout
        assert "started by Open MPI's launcher" in done.stderr, done.stderr
        assert f"mpiexec.mpich -n {ranks}" in done.stderr, done.stderr


# -- tasks and farms ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode", [dict(serial=3), dict(ranks=3)], ids=["serial3", "np3"])
def test_unpicklable_argument_and_submit_after_shutdown(launch, mode):
    r = report(launch(app(r'''
        @parc.closure
        def take(a, b=None):
            return a


        def main():
            out = {}
            lock = threading.Lock()
            farm = parc.TaskFarm()
            for label, call in [
                ("argument", lambda: farm.submit(take, 1, lock)),
                ("map", lambda: list(farm.map(take, [1, lock]))),
                ("spmd", lambda: parc.Spmd().run(lambda ctx, x: x, lock)),
                ("pipeline", lambda: list(parc.Pipeline([abs]).run([1, lock]))),
            ]:
                try:
                    call()
                    out[label] = None
                except Exception as e:
                    out[label] = [type(e).__name__, str(e)]
            out["after"] = farm.submit(take, 5).result()
            farm.shutdown()
            for label, call in [("submit", lambda: farm.submit(take, 1)),
                                ("map_after", lambda: farm.map(take, [1]))]:
                try:
                    call()
                    out[label] = None
                except Exception as e:
                    out[label] = [type(e).__name__, str(e)]
            emit(out)


        parc.run(main)
    '''), timeout=60, **mode))
    assert r["argument"][0] == "TypeError", r
    assert "argument 2 of take (lock) cannot be pickled" in r["argument"][1], r
    assert r["map"][0] == "TypeError" and "argument 1 of take" in r["map"][1], r
    assert r["spmd"][0] == "TypeError" and "cannot be pickled" in r["spmd"][1], r
    assert r["pipeline"][0] == "TypeError" and "item #1 of the input (lock)" in r["pipeline"][1]
    assert r["after"] == 5
    # concurrent.futures.Executor's own error and message, as ProcessPoolExecutor gives.
    assert r["submit"] == ["RuntimeError", "cannot schedule new futures after shutdown"], r
    assert r["map_after"] == ["RuntimeError", "cannot schedule new futures after shutdown"]


# -- proxies whose owner is gone ---------------------------------------------------------------

PROXIES = r'''
import gc, pickle


class Box:
    def __init__(self, v):
        self.v = v

    def get(self):
        return self.v


KEPT = []


def attempt(call):
    try:
        return ["ok", call()]
    except Exception as e:
        return [type(e).__name__, str(e), isinstance(e, ReferenceError)]


def main():
    owner = parc.workers()
    out = {}
    what = sys.argv[1]
    if what == "released":
        p = parc.Proxy.create(Box, 1, owner=owner)
        data = pickle.dumps(p)
        first = pickle.loads(data)
        del p, first
        gc.collect()
        deadline = time.monotonic() + 20
        while parc.live_objects(owner) and time.monotonic() < deadline:
            time.sleep(0.05)
        late = pickle.loads(data)
        out["released"] = attempt(late.get)
    elif what == "keep":
        KEPT.append(parc.Proxy.create(Box, 2, owner=owner))
        out["before"] = KEPT[0].get()
    elif what == "dump":
        p = parc.Proxy.create(Box, 3, owner=owner)
        with open(sys.argv[2], "wb") as f:
            pickle.dump(p, f)
        out["dumped"] = p.get()
    else:  # load what another job dumped (load_late: with an object of our own first)
        mine = parc.Proxy.create(Box, 5, owner=owner) if what == "load_late" else None
        with open(sys.argv[2], "rb") as f:
            out["load"] = attempt(lambda: pickle.loads(f.read()).get())
        out["after"] = parc.Proxy.create(Box, 4, owner=owner).get()  # still usable
    emit(out)


parc.run(main)
if KEPT:  # the runtime has stopped: the owner may be gone
    emit({"after_run": attempt(KEPT[0].get)}, tag="AFTER")
print("EXITING", flush=True)
'''


@pytest.mark.parametrize("mode", [dict(serial=3), dict(ranks=2), dict(ranks=4)],
                         ids=["serial3", "np2", "np4"])
def test_a_proxy_to_a_released_object_raises_reference_error(launch, mode):
    r = report(launch(app(PROXIES), args=["released"], timeout=60, **mode))
    kind, message, is_reference_error = r["released"]
    assert kind == "ProxyError" and is_reference_error, r
    assert "was released" in message and "Keep a proxy alive" in message, message


@pytest.mark.parametrize("mode", [
    pytest.param(dict(serial=3), id="serial3"),
    pytest.param(dict(ranks=2), id="np2"),
    pytest.param(dict(ranks=3), id="np3"),
])
def test_a_proxy_kept_past_parc_run_says_the_runtime_stopped(launch, mode):
    result = launch(app(PROXIES), args=["keep"], timeout=60, **mode)
    assert result.returncode == 0, result.output
    assert report(result)["before"] == 2
    [after] = reports(result, "AFTER")
    assert after["after_run"][0] == "UsageError", after
    assert after["after_run"][1] == "parc: proxies are unavailable once the runtime has stopped"
    assert "EXITING" in result.stdout


@pytest.mark.parametrize("into", [dict(ranks=2), dict(ranks=3), dict()],
                         ids=["np4-to-np2", "np4-to-np3", "np4-to-serial"])
def test_a_proxy_from_a_bigger_job_is_refused_when_loaded(launch, tmp_path, into):
    dumped = tmp_path / "proxy.pickle"
    assert report(launch(app(PROXIES), args=["dump", dumped], ranks=4, timeout=60))[
        "dumped"] == 3
    result = launch(app(PROXIES), args=["load", dumped], timeout=60, **into)
    r = report(result)  # exit status 0: no MPI abort from a release to a missing rank
    ranks = into.get("ranks", 2)  # serially: rank 0 and one simulated worker
    assert r["load"][0] == "UsageError", r
    assert r["load"][1] == (f"parc: this proxy's object is owned by rank 3, which does not "
                            f"exist in this job ({ranks} ranks): a proxy pickled in another "
                            "job cannot be loaded here"), r
    assert r["after"] == 4


def test_a_proxy_from_another_job_of_the_same_size_is_refused(launch, tmp_path):
    dumped = tmp_path / "proxy.pickle"
    report(launch(app(PROXIES), args=["dump", dumped], ranks=3, timeout=60))
    r = report(launch(app(PROXIES), args=["load_late", dumped], ranks=3, timeout=60))
    assert r["load"][:2] == ["UsageError", (
        "parc: this proxy was pickled in another job, whose objects are gone: a proxy is a "
        "reference within one job; to keep an object across jobs, pickle the object itself "
        "(p.resolve())")], r
    assert r["after"] == 4
