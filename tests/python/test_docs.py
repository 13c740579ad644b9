"""The complete Python programs in the README and docs (those calling parc.run) run,
serially and on 3 ranks, so the documentation cannot rot."""

import re
from pathlib import Path

import pytest

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
