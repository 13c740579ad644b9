"""Ranks that die: the job ends within 10 s with a non-zero status, one line names the
rank that died and what it was doing (its watcher reads the flight record, see
docs/faults.md), and no process of the job is left behind.

Each app prints `FAULT rank <r> pid <p> at <unix time>` just before its fault, so the
time to detection is measured from the fault to the end of mpiexec.
"""

import os
import re
import subprocess
import time
import uuid

import pytest

from conftest import MPIEXEC, app

DIED = re.compile(r"^parc: rank (\d+) \(host [^,]+, pid (\d+)\) died while (.*) \(killed, crashed, "
                  r"or exited without finalizing MPI\); MPICH ends the whole job", re.M)
FAULT = re.compile(r"^FAULT rank (\d+) pid (\d+) at ([0-9.]+)$", re.M)
DETECTION_LIMIT = 10.0  # seconds from the fault to the end of the job

PYTHON_APP = app(r'''
import signal

FAULT_KIND = os.environ.get("PARC_FAULT", "")


def announce():
    print(f"FAULT rank {parc.rank()} pid {os.getpid()} at {time.time():.3f}", flush=True)


@parc.closure
def work(x):
    if x == 5 and FAULT_KIND in ("kill", "_exit0", "_exit3"):
        announce()
        if FAULT_KIND == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        os._exit(0 if FAULT_KIND == "_exit0" else 3)
    time.sleep(0.2)
    return x


class Doomed:
    def fail(self):
        announce()
        os.kill(os.getpid(), signal.SIGKILL)


def main():
    if FAULT_KIND == "proxy_owner":
        doomed = parc.Proxy.create(Doomed, owner=parc.size() - 1)
        doomed.fail()
        return 0
    with parc.TaskFarm() as farm:
        futures = [farm.submit(work, x) for x in range(12)]
        if FAULT_KIND == "manager":
            time.sleep(0.3)
            announce()
            os._exit(0)
        print("sum", sum(f.result() for f in futures), flush=True)
    return 0


if __name__ == "__main__":
    parc.run(main)
''')


def leftovers(tag):
    """Live (not zombie) processes whose command line holds `tag`: ranks or watchers."""
    listing = subprocess.run(["ps", "-eo", "stat=,args="], capture_output=True, text=True).stdout
    return [line for line in listing.splitlines()
            if tag in line and not line.lstrip().startswith("Z") and "ps -eo" not in line]


def run_fault(launch, tmp_path, fault, ranks, probe=False):
    tag = f"fault-{uuid.uuid4().hex[:12]}"  # an argument no other process has
    env = {"PARC_FAULT": fault}
    if probe:
        command = ["timeout", "-k", "10", "60", MPIEXEC, "-n", str(ranks),
                   os.environ["PARC_FAULT_PROBE"], tag]
        completed = subprocess.run(command, capture_output=True, text=True,
                                   env={**os.environ, **env})
        output, status = completed.stdout + completed.stderr, completed.returncode
    else:
        result = launch(PYTHON_APP, ranks=ranks, env=env, timeout=60, args=(tag,))
        output, status = result.output, result.returncode
    ended = time.time()
    assert status != 124, f"the job hung\n{output}"
    deadline = time.time() + 5
    while leftovers(tag) and time.time() < deadline:
        time.sleep(0.2)
    assert not leftovers(tag), f"processes left behind: {leftovers(tag)}\n{output}"
    return output, status, ended


def check_report(output, status, ended, doing):
    """One line names the rank that died (the one that announced the fault) and `doing`."""
    assert status != 0, output
    fault = FAULT.search(output)
    assert fault, f"the fault did not happen\n{output}"
    died = DIED.findall(output)
    assert len(died) == 1, f"expected one report of a death, got {died}\n{output}"
    rank, pid, what = died[0]
    assert (rank, pid) == (fault.group(1), fault.group(2)), output
    assert re.fullmatch(doing, what), f"{what!r} does not match {doing!r}\n{output}"
    detection = ended - float(fault.group(3))
    assert detection < DETECTION_LIMIT, f"the job took {detection:.1f} s to end\n{output}"
    print(f"detected in {detection:.2f} s: {died[0]}")


@pytest.mark.parametrize("ranks", [2, 3, 4])
def test_python_worker_killed_mid_task(launch, tmp_path, ranks):
    output, status, ended = run_fault(launch, tmp_path, "kill", ranks)
    check_report(output, status, ended, r"running task \d+: work\(\.\.\.\)")


@pytest.mark.parametrize("fault", ["_exit0", "_exit3"])
@pytest.mark.parametrize("ranks", [2, 3])
def test_python_worker_exits_without_finalize(launch, tmp_path, fault, ranks):
    output, status, ended = run_fault(launch, tmp_path, fault, ranks)
    check_report(output, status, ended, r"running task \d+: work\(\.\.\.\)")


@pytest.mark.parametrize("ranks", [2, 4])
def test_python_manager_dies(launch, tmp_path, ranks):
    output, status, ended = run_fault(launch, tmp_path, "manager", ranks)
    check_report(output, status, ended, "running main")
    assert "sum" not in output


@pytest.mark.parametrize("ranks", [2, 3])
def test_python_proxy_owner_dies_during_a_call(launch, tmp_path, ranks):
    output, status, ended = run_fault(launch, tmp_path, "proxy_owner", ranks)
    check_report(output, status, ended, r".*, serving a proxy request from rank 0")


@pytest.mark.parametrize("fault, doing", [
    ("kill", r"running task \d+: probe_task"),
    ("_exit", r"running task \d+: probe_task"),
    ("exit", r"running task \d+: probe_task"),  # std::exit inside a task loses it too
    ("manager", "running main"),
    ("proxy_owner", r"waiting for work, serving a proxy request from rank 0"),
])
@pytest.mark.parametrize("ranks", [2, 4])
def test_cpp_rank_dies(launch, tmp_path, fault, doing, ranks):
    output, status, ended = run_fault(launch, tmp_path, fault, ranks, probe=True)
    check_report(output, status, ended, doing)


@pytest.mark.parametrize("ranks", [2, 3])
def test_no_report_when_nothing_dies(launch, tmp_path, ranks):
    output, status, _ = run_fault(launch, tmp_path, "", ranks, probe=True)
    assert status == 0 and "probe sum 66" in output, output
    assert not DIED.search(output), output
    output, status, _ = run_fault(launch, tmp_path, "", ranks)
    assert status == 0 and "sum 66" in output, output
    assert not DIED.search(output), output


def test_no_report_when_parc_ends_the_job_itself(launch, tmp_path):
    """A worker stuck past the shutdown grace: parc logs why and calls MPI_Abort; the
    watchers of the ranks that go down with it stay silent."""
    os.environ["PARC_SHUTDOWN_GRACE"] = "1"
    try:
        output, status, _ = run_fault(launch, tmp_path, "hang", 3, probe=True)
    finally:
        del os.environ["PARC_SHUTDOWN_GRACE"]
    assert status == 1, output
    assert re.search(r"parc::TaskTimeout: task \d+ \(probe_task\) has run longer than the farm's "
                     r"timeout of 1 s on rank \d", output), output
    assert re.search(r"rank \d is still running task \d+, which timed out; ending the job",
                     output), output
    assert not DIED.search(output), output
