"""C++ task output (tests/output/output_probe.cpp): printf, std::cout and std::cerr lines
from tasks on several ranks arrive whole, and PARC_OUTPUT=prefix starts each with the
rank that ran the task, serially too (the simulated worker's)."""

import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import MPIEXEC

PROBE = Path(os.environ.get("PARC_BUILD_DIR", "build")) / "tests" / "output_probe"
DIGITS = "0123456789" * 60
STDOUT_LINE = re.compile(rf"^(?:\[rank (\d+)\] )?(task (\d+) (?:(?:printf|cout) \d {DIGITS}|partial)"
                         r"|sum 66)$")
STDERR_LINE = re.compile(rf"^(?:\[rank (\d+)\] )?(task (\d+) cerr \d {DIGITS})$")


def run(ranks=None, serial=None, prefix=False):
    env = dict(os.environ)
    env.pop("PARC_SERIAL", None)
    env.pop("PARC_OUTPUT", None)
    if serial:
        env["PARC_SERIAL"] = str(serial)
    if prefix:
        env["PARC_OUTPUT"] = "prefix"
    command = [str(PROBE)] if ranks is None else [MPIEXEC, "-n", str(ranks), str(PROBE)]
    result = subprocess.run(["timeout", "-k", "10", "60", *command], capture_output=True,
                            text=True, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def parse(text, pattern):
    """[(prefix rank or None, task or None)] of every line; fails on a merged line."""
    found = []
    for line in text.splitlines():
        match = pattern.match(line)
        assert match, f"a line that is not whole: {line[:120]!r}"
        rank, _, task = match.groups()
        found.append((None if rank is None else int(rank), None if task is None else int(task)))
    return found


@pytest.mark.parametrize("mode", [dict(ranks=3), dict(ranks=4), dict(ranks=3, prefix=True),
                                  dict(serial=3, prefix=True)],
                         ids=["np3", "np4", "np3-prefix", "serial3-prefix"])
def test_cpp_task_lines_arrive_whole(mode):
    result = run(**mode)
    out = parse(result.stdout, STDOUT_LINE)
    err = parse(result.stderr, STDERR_LINE)
    # 12 tasks: 4 printf + 4 cout lines and the partial line each, then the sum.
    assert len(out) == 12 * 9 + 1 and len(err) == 12 * 4
    assert sorted(task for _, task in out if task is not None) == sorted(list(range(12)) * 9)
    workers = mode["ranks"] - 1 if "ranks" in mode else mode.get("serial", 1)
    if not mode.get("prefix"):
        assert all(rank is None for rank, _ in out + err)
        return
    assert (0, None) in out  # main's line: rank 0
    ran_on = {}
    for rank, task in out + err:
        if task is not None:
            assert 1 <= rank <= workers
            assert ran_on.setdefault(task, rank) == rank  # every line of a task: its rank


def test_a_bad_parc_output_stops_the_start():
    result = subprocess.run(["timeout", "30", str(PROBE)], capture_output=True, text=True,
                            env={**os.environ, "PARC_OUTPUT": "rank"})
    assert result.returncode == 2
    assert "PARC_OUTPUT=rank is not an output mode" in result.stderr
