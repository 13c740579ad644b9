"""The complete Python programs in the README and docs (those calling parc.run) run,
serially and on 3 ranks, and the outputs the docs show are the ones printed, so the
documentation cannot rot."""

import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import MPI_LEFTOVERS

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def programs():
    for doc in DOCS:
        blocks = re.findall(r"```python\n(.*?)```", doc.read_text(), re.S)
        for number, block in enumerate(blocks):
            if "parc.run(" in block:
                yield pytest.param(block, id=f"{doc.name}#{number}")


@pytest.mark.parametrize("mode", [dict(), dict(ranks=3)], ids=["serial", "np3"])
@pytest.mark.parametrize("program", list(programs()))
def test_documented_program_runs(launch, program, mode):
    result = launch(program, **mode)
    assert result.returncode == 0, result.output
    # Nothing left for MPI at exit, even after spmd.md's failing and cancelled regions.
    assert not MPI_LEFTOVERS.search(result.stderr), result.stderr


def test_the_readme_example_prints_what_the_readme_shows(launch):
    text = (REPO / "README.md").read_text()
    program = re.search(r"## Example: Python\n\n```python\n(.*?)```", text, re.S).group(1)
    shown = re.search(r"\$ mpiexec.mpich -n 4 python3 app.py\n(.*?)```", text, re.S).group(1)
    result = launch(program, ranks=4)
    assert result.returncode == 0, result.output
    expected = shown.splitlines()
    got = result.stdout.splitlines()
    assert got[0] == expected[0]
    # Which rank, host and pid ran the failing task varies from run to run.
    def normalize(line):
        return re.sub(r"(rank|pid|task) \d+", r"\1 N", re.sub(r"host [^,]+", "host H", line))

    assert normalize(got[1]) == normalize(expected[1])


# The start-up refusals getting-started.md shows, from the C++ startup probe under the
# environment each launcher sets (neither Open MPI nor Slurm is needed).
LAUNCHES = {
    "$ mpiexec -n 2 ./app": {"OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "0"},
    "$ srun --mpi=pmix -n 4 ./app": {"SLURM_STEP_NUM_TASKS": "4", "SLURM_NTASKS": "4",
                                     "SLURM_PROCID": "0", "SLURM_MPI_TYPE": "pmix",
                                     "PMIX_RANK": "0", "PMIX_NAMESPACE": "slurm.pmix.1.0"},
}


@pytest.mark.parametrize("command", list(LAUNCHES))
def test_getting_started_shows_the_launcher_messages_printed(command):
    build = os.environ.get("PARC_BUILD_DIR")
    if not build:
        pytest.skip("PARC_BUILD_DIR (set by CTest) locates the startup probe")
    text = (REPO / "docs" / "getting-started.md").read_text()
    shown = re.search(re.escape(command) + r"\n(.*?)\n```", text, re.S).group(1)
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith(("OMPI_", "SLURM_", "PMIX_", "PMI_", "PARC_"))}
    result = subprocess.run(["timeout", "30", str(Path(build) / "tests" / "startup_probe")],
                            capture_output=True, text=True, env={**environment,
                                                                 **LAUNCHES[command]})
    assert result.returncode == 2, result.stdout + result.stderr

    def normalize(line):
        return re.sub(r"^\[\d\d:\d\d:\d\d\.\d{3}\] ", "[time] ", line)

    assert [normalize(line) for line in result.stderr.splitlines()] == \
        [normalize(line) for line in shown.splitlines()]


def test_debugging_shows_the_group_as_printed(launch):
    text = (REPO / "docs" / "debugging.md").read_text()
    program = re.search(r"## Post-mortem with pdb.*?```python\n(.*?)```", text, re.S).group(1)
    shown = re.search(r"\(Pdb\) c\n(.*?)Uncaught exception", text, re.S).group(1)
    result = launch(program.replace("range(4)", "range(5)"))
    assert result.returncode != 0

    def normalize(line):
        line = re.sub(r"host [^,]+, pid \d+", "host H, pid N", line.strip(" |+-"))
        return re.sub(r'File "[^"]*app.py"', 'File "app.py"', line)

    printed = [normalize(line) for line in result.stderr.splitlines()]
    for line in shown.splitlines():
        if line.strip() not in ("...", "") and "----" not in line:
            assert normalize(line) in printed, (line, result.stderr)


def test_log_lines_show_the_level_as_the_docs_say(launch):
    # debugging.md: the warn level prints as [warning].
    assert "(the `warn` level prints as\n`[warning]`)" in (REPO / "docs" /
                                                          "debugging.md").read_text()
    result = launch("import parc\nparc.run(lambda: 0)\n", ranks=2, serial=2)
    assert result.returncode == 0, result.output
    assert re.search(r"\[parc rank 0\] \[warning\] PARC_SERIAL=2 under a launcher",
                     result.stderr), result.stderr


# The program behind python-exceptions.md's uncaught group (the doc shows its output).
UNCAUGHT = '''
import parc


class SolverDiverged(Exception):
    def __init__(self, step, residual):
        super().__init__(f"residual grew to {residual:g} at step {step}")


@parc.closure
def solve(step):
    if step == 2:
        raise SolverDiverged(step, 1e12)
    if step == 3:
        raise ValueError(f"bad step {step}")
    return step


def main():
    with parc.TaskFarm(policy="collect_all") as farm:
        return list(farm.map(solve, range(5)))


if __name__ == "__main__":
    parc.run(main)
'''


def test_python_exceptions_shows_the_uncaught_group_as_printed(launch):
    text = (REPO / "docs" / "python-exceptions.md").read_text()
    shown = re.search(r"```text\n(  \| parc\.ParallelException: solve.*?)```", text, re.S)[1]
    result = launch(UNCAUGHT, ranks=2)
    assert result.returncode != 0
    printed = [line.strip(" |+-") for line in result.stderr.splitlines()]
    for line in shown.splitlines():
        line = line.strip(" |+-")
        if line.startswith(("parc.", "rebuilt as", "ValueError", "SolverDiverged")):
            assert line in printed, (line, result.stderr)
