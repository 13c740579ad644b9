"""CPython's test_concurrent_futures against parc.TaskFarm (stdlib_executor.py), serially,
with 3 simulated workers and over 2 and 3 MPI ranks.

stdlib_executor.py prints one `STDLIB {json}` line and exits non-zero when a test that
applies to parc failed, erred or hung (see its SKIPPED and KNOWN_DIFFERENCES tables).
Needs Debian's libpython3.11-testsuite (scripts/install-deps.sh).
"""

from pathlib import Path

import pytest

from conftest import reports

PROGRAM = Path(__file__).with_name("stdlib_executor.py")

# The stdlib tests stdlib_executor.py collects (ExecutorTest + ProcessPoolExecutorTest,
# ExecutorShutdownTest + ProcessPoolShutdownTest, WaitTests, AsCompletedTests) and how
# many of them its SKIPPED table skips: a suite that silently shrinks fails here.
EXPECTED_RAN = 43
EXPECTED_SKIPPED = 14

MODES = [
    pytest.param(dict(), id="serial"),
    pytest.param(dict(serial=3), id="serial3"),
    pytest.param(dict(ranks=2), id="np2"),
    pytest.param(dict(ranks=3), id="np3"),
]


@pytest.mark.parametrize("mode", MODES)
def test_stdlib_concurrent_futures(launch, mode):
    result = launch(PROGRAM, timeout=300, **mode)
    found = reports(result, "STDLIB")
    assert len(found) == 1, f"expected one STDLIB line\n{result.output}"
    summary = found[0]
    assert summary["ran"] == EXPECTED_RAN, f"{summary}\n{result.output}"
    assert len(summary["skipped"]) == EXPECTED_SKIPPED, f"{summary}\n{result.output}"
    assert result.returncode == 0, (
        f"exit status {result.returncode}: failures {summary['failures']}, errors "
        f"{summary['errors']}, hung {summary['hung']}, unexpected successes "
        f"{summary['unexpected_successes']}\n{result.output}")
