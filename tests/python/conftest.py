"""Shared fixtures: every test here runs parc programs as real subprocesses.

`launch` runs a script (a path, or source text) with Debian's python3 against the build
tree's package: serially (`ranks=None`), or under MPICH's `mpiexec.mpich -n ranks`.
Each launch runs under `timeout`, so a hang fails the test instead of blocking CI.
"""

import json
import os
import re
import subprocess
import textwrap
from pathlib import Path

import pytest

PYTHON = os.environ.get("PARC_TEST_PYTHON", "/usr/bin/python3")
MPIEXEC = os.environ.get("PARC_MPIEXEC", "mpiexec.mpich")
# The build tree's python/ folder (holds parc/ with _core); set by CTest.
PACKAGE_DIR = os.environ.get("PARC_PYTHONPATH", "")
REPO = Path(__file__).resolve().parents[2]


class Launched(subprocess.CompletedProcess):
    @property
    def output(self):
        return self.stdout + self.stderr


def _run(script, ranks=None, serial=None, env=None, timeout=120, args=(), tmp_path=None,
         python_args=(), stdin=None):
    if isinstance(script, str):
        path = tmp_path / "app.py"
        path.write_text(textwrap.dedent(script))
        script = path
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        p for p in [PACKAGE_DIR, str(REPO / "tests" / "python"),
                    environment.get("PYTHONPATH", "")] if p)
    environment.pop("PARC_SERIAL", None)
    if serial is not None:
        environment["PARC_SERIAL"] = str(serial)
    environment.update(env or {})
    command = [PYTHON, *python_args, str(script), *map(str, args)]
    if ranks is not None:
        command = [MPIEXEC, "-n", str(ranks), *command]
    command = ["timeout", "-k", "10", str(timeout), *command]
    completed = subprocess.run(command, capture_output=True, text=True, env=environment,
                               cwd=tmp_path or REPO, input=stdin)
    result = Launched(completed.args, completed.returncode, completed.stdout, completed.stderr)
    if completed.returncode == 124:
        pytest.fail(f"timed out after {timeout} s: {' '.join(command)}\n{result.output}")
    return result


# What MPI (UCX) prints at exit about operations a process left incomplete ("was not
# returned to mpool") or messages sent to it that it never received ("unexpected
# tag-receive descriptor ... was not matched").
MPI_LEFTOVERS = re.compile(r"^.*UCX +(?:WARN|ERROR).*$", re.MULTILINE)


def without_mpi_leftovers(launcher):
    """`launcher`, asserting that every run's stderr has no MPI leftovers at exit."""

    def checked(script, **kwargs):
        result = launcher(script, **kwargs)
        leftovers = MPI_LEFTOVERS.findall(result.stderr)
        assert not leftovers, "MPI reported unfinished operations at exit:\n" + result.output
        return result

    return checked


@pytest.fixture
def launch(tmp_path):
    """launch(script, ranks=None, serial=None, env=None, timeout=120, args=()) -> result

    `script` is a Path, or Python source text (written to tmp_path/app.py). The result
    has returncode, stdout, stderr and output (both)."""

    def launcher(script, **kwargs):
        kwargs.setdefault("tmp_path", tmp_path)
        return _run(script, **kwargs)

    return launcher


# The launches every behaviour is checked under: serially, with simulated workers, and
# over real MPI ranks.
MODES = [
    pytest.param(dict(), id="serial"),
    pytest.param(dict(serial=3), id="serial3"),
    pytest.param(dict(ranks=2), id="np2"),
    pytest.param(dict(ranks=4), id="np4"),
]


@pytest.fixture(params=MODES)
def mode(request):
    return request.param


# -- helpers for the behaviour suites (test_farm, test_exceptions, test_runtime,
# test_serial_debug) ------------------------------------------------------------------

SERIAL_MODES = [pytest.param(dict(), id="serial"), pytest.param(dict(serial=3), id="serial3")]


def workers_of(mode):
    """How many workers run tasks in a launch mode: ranks - 1, or the simulated ones."""
    return mode["ranks"] - 1 if mode.get("ranks") else mode.get("serial") or 1


def is_mpi(mode):
    return bool(mode.get("ranks"))


def reports(result, tag="REPORT"):
    """The JSON objects an app printed as lines `REPORT {...}` (json.dumps), in order."""
    return [json.loads(line[len(tag) + 1:]) for line in result.stdout.splitlines()
            if line.startswith(tag + " ")]


def report(result, tag="REPORT"):
    """The one `REPORT {...}` line of a successful launch, as an object."""
    assert result.returncode == 0, f"exit status {result.returncode}\n{result.output}"
    found = reports(result, tag)
    assert len(found) == 1, f"expected one {tag} line, got {len(found)}\n{result.output}"
    return found[0]


@pytest.fixture
def blocked(tmp_path):
    """A folder whose tqdm.py and cloudpickle.py raise ImportError: an app that puts it
    first on sys.path (before importing parc) runs as if they were not installed."""
    folder = tmp_path / "blocked"
    folder.mkdir()
    for name in ("tqdm", "cloudpickle"):
        (folder / f"{name}.py").write_text('raise ImportError("blocked by test")\n')
    return folder


# The start of every app the behaviour suites launch: imports, and emit() for reporting.
APP_PRELUDE = r'''
import concurrent.futures, functools, itertools, json, math, os, socket, sys, threading, time
import traceback
import parc


def emit(obj, tag="REPORT"):
    # One write per line: the ranks' output is merged by mpiexec.
    sys.stdout.write(f"{tag} {json.dumps(obj, default=repr)}\n")
    sys.stdout.flush()

'''


def app(body, first_lines="", helpers=""):
    """An app's source: `first_lines` (run before parc is imported), the prelude,
    `helpers`, then `body`."""
    return textwrap.dedent(first_lines) + APP_PRELUDE + helpers + textwrap.dedent(body)
