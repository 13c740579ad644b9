"""The Python examples run, and print what they should, in every mode.

Each example runs serially, with PARC_SERIAL=4, and under mpiexec.mpich -n 2 and -n 4
(cannon.py, which needs a square region, at -n 5 instead of -n 4; dictionary.py at -n 3
too); the checks below are on what it prints (the examples also check themselves and exit
non-zero when a fact they print does not hold).
"""

import json
import math
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "python"

MODES = [
    pytest.param(dict(), id="serial"),
    pytest.param(dict(serial=4), id="serial4"),
    pytest.param(dict(ranks=2), id="np2"),
    pytest.param(dict(ranks=4), id="np4"),
]


def workers(mode):
    return mode["ranks"] - 1 if "ranks" in mode else mode.get("serial", 1)


def run_ok(launch, name, mode):
    result = launch(EXAMPLES / name, **mode)
    assert result.returncode == 0, result.output
    assert "Traceback" not in result.stderr, result.output
    return result


@pytest.mark.parametrize("mode", MODES)
def test_pi(launch, mode):
    result = run_ok(launch, "pi.py", mode)
    found = re.search(r"pi ~= (\d+\.\d+) from 40,000,000 darts on (.*)", result.stdout)
    assert found, result.output
    assert abs(float(found.group(1)) - math.pi) < 0.05, result.output
    expected = f"{workers(mode)} worker{'s' * (workers(mode) > 1)}"
    expected += " (serial)" if "ranks" not in mode else ""
    assert found.group(2) == expected, result.output


@pytest.mark.parametrize("mode", MODES)
def test_pi_same_estimate_in_every_mode(launch, mode):
    # One seed per task and results in seed order: the estimate does not depend on
    # how many workers there are or which one ran what.
    reference = launch(EXAMPLES / "pi.py")
    result = run_ok(launch, "pi.py", mode)
    estimate = re.compile(r"pi ~= (\d+\.\d+)")
    assert estimate.search(result.stdout).group(1) == estimate.search(reference.stdout).group(1)


@pytest.mark.parametrize("mode", MODES)
def test_sweep(launch, mode):
    result = run_ok(launch, "sweep.py", mode)
    assert ("10 profiles of 65536 points; heat conserved: True; "
            "peak falls as the rate grows: True") in result.stdout, result.output
    rows = re.findall(r"^\s*(0\.\d+)\s+(\d\.\d+)\s+(\d+\.\d+)$", result.stdout, re.MULTILINE)
    assert len(rows) == 10, result.output
    assert [float(rate) for rate, _, _ in rows] == pytest.approx(
        [0.05 + 0.05 * i for i in range(10)])


@pytest.mark.parametrize("mode", MODES)
def test_exceptions_walkthrough(launch, mode):
    result = run_ok(launch, "exceptions_walkthrough.py", mode)
    out = result.stdout
    assert "all checks passed" in out, result.output
    serial = " (serial)" if "ranks" not in mode else ""
    assert out.startswith(f"{workers(mode)} worker(s){serial}\n"), out

    def section(number):
        found = re.search(rf"^== {number}\..*?(?=^== |\Z)", out, re.MULTILINE | re.DOTALL)
        assert found, f"no section {number}:\n{out}"
        return found.group(0)

    # 1. except* split the collect_all group by type; notes and attributes are there.
    one = section(1)
    for x in (1, 4):
        assert f"BadInput: input {x}: negative density" in one
        assert re.search(rf"note: rank \d+ \(host \S+, pid \d+\), task \d+: simulate\({x}\)", one)
    assert len(re.findall(r"^ZeroDivisionError: float division by zero$", one, re.MULTILINE)) == 2
    assert re.search(r"note: rank \d+ \(host \S+, pid \d+\), task \d+: simulate\(5\)", one)
    ranks = {int(r) for r in re.findall(r"parc_rank=(\d+)", one)}
    assert ranks and ranks <= set(range(1, workers(mode) + 1)), one
    assert "remote traceback ends with: BadInput: input 1: negative density" in one \
        or "remote traceback ends with: __main__.BadInput: input 1: negative density" in one, one

    assert "result() raised BadInput: input 4: negative density" in section(2)

    three = section(3)
    assert "StepFailed: cannot load step 'refine'" in three
    assert "__cause__: KeyError: 'refine'" in three

    four = section(4)
    assert "parc.RemoteError" in four
    assert re.search(r"type_name: \S*SolverDiverged", four), four
    assert "residual grew to 1e+12 at step 7" in four

    five = section(5)
    assert "map raised at once: ['input 0 is invalid']" in five
    assert re.search(r"submit_batch x40: 1 failed, \d+ cancelled", five), five
    assert "futures[-1].result() raised CancelledError" in five

    six = section(6)
    for x in (0, 1, 2, 4, 5):
        assert f"input {x}: 2 attempt(s) -> result {10 * x}" in six, six
    assert "input 3: 1 attempt(s) -> BadInput: input 3 is invalid" in six, six

    seven = section(7)
    assert len(re.findall(r"^  TaskTimeout: ", seven, re.MULTILINE)) == 1, seven
    assert "result 0.01" in seven and "result 0.02" in seven, seven


@pytest.mark.parametrize("mode", MODES)
def test_heat_same_output_at_any_rank_count(launch, mode):
    # Jacobi sweeps do not depend on how the rows are split over the region's ranks: all
    # but the first line (the region's size) must be the serial run's, bit for bit.
    reference = run_ok(launch, "heat.py", {}).stdout.splitlines()
    result = run_ok(launch, "heat.py", mode)
    lines = result.stdout.splitlines()
    assert lines[0] == f"SPMD region of {workers(mode)} rank(s)", result.output
    assert lines[1:] == reference[1:], result.output
    assert re.fullmatch(r"plate 40 x 40, top edge at 100 degrees: converged in \d+0 Jacobi "
                        r"sweeps \(largest change < 0\.001\)", lines[1]), result.output
    assert lines[3] == ("same field as one block: True; within the edge temperatures: True; "
                        "left-right symmetric: True"), result.output


@pytest.mark.parametrize("mode", MODES)
def test_pipeline(launch, mode):
    result = run_ok(launch, "pipeline.py", mode)
    out = result.stdout
    assert ("200 signals of 16384 points: generate -> transform (2 workers) -> reduce"
            in out), result.output
    assert "dominant frequencies: 1: 40, 2: 40, 3: 40, 4: 40, 5: 40" in out, result.output
    assert "frequency recovered for 200 of 200 signals" in out, result.output
    # Stages take ranks in turn; the 2-worker stage shares when there are too few.
    n = workers(mode)
    expected = {1: "[[1], [1], [1]]", 3: "[[1], [2, 3], [1]]", 4: "[[1], [2, 3], [4]]"}[n]
    assert f"stages on ranks: {expected}" in out, result.output


# Cannon's multiply needs a square region: 1 rank serially and at -n 2, 4 with
# PARC_SERIAL=4 and at -n 5. One BLAS thread per rank: the ranks share the cores.
ONE_BLAS_THREAD = {"OPENBLAS_NUM_THREADS": "1"}


@pytest.mark.parametrize("mode, size", [
    pytest.param(dict(), 1, id="serial"),
    pytest.param(dict(serial=4), 4, id="serial4"),
    pytest.param(dict(ranks=2), 1, id="np2"),
    pytest.param(dict(ranks=5), 4, id="np5"),
])
def test_cannon(launch, mode, size):
    # The example checks every entry of C against its closed form and exits 1 otherwise.
    result = run_ok(launch, "cannon.py", dict(mode, args=(64, 2), env=ONE_BLAS_THREAD))
    line = json.loads(result.stdout)
    assert line == {"impl": "python/parc", "n": 64, "ranks": size,
                    "seconds": line["seconds"], "max_error": 0}, result.output
    assert line["seconds"] > 0, result.output


@pytest.mark.parametrize("mode, args, message", [
    pytest.param(dict(ranks=4), (64,), "needs a square region (1, 4, 9, ... ranks), got 3",
                 id="np4-three-ranks"),
    pytest.param(dict(serial=4), (65,), "n must be a positive multiple of q = 2, got 65",
                 id="serial4-n-not-a-multiple-of-q"),
])
def test_cannon_bad_grid(launch, mode, args, message):
    result = launch(EXAMPLES / "cannon.py", args=args, env=ONE_BLAS_THREAD, **mode)
    assert result.returncode == 2, result.output
    assert f"cannon.py: {message}\n" in result.stderr, result.output
    assert "Traceback" not in result.stderr, result.output


@pytest.mark.parametrize("mode", MODES + [pytest.param(dict(ranks=3), id="np3")])
def test_dictionary(launch, mode):
    result = run_ok(launch, "dictionary.py", mode)
    out = result.stdout
    shards = workers(mode)
    owners = list(range(1, shards + 1))
    assert re.search(rf"^40 texts, 200000 words, 21 distinct, in {shards} shard\(s\) on ranks "
                     rf"{re.escape(str(owners))} holding \[[\d, ]+\] words$", out,
                     re.MULTILINE), result.output
    assert re.search(r"^most common: the \d+, \w+ \d+, \w+ \d+ \(fox \d+\)$", out,
                     re.MULTILINE), result.output
    assert "same counts as one serial pass: True; every word in its own shard: True" in out
    assert "shards released: 0 objects left on the workers" in out, result.output
