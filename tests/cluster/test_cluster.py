"""parc across three "hosts" (network namespaces with hostnames of their own, made by
tests/cluster/cluster.sh, which runs this file): the examples and a proxy read under
`srun --mpi=pmi2 -N 3`, under `sbatch` with `mpiexec.mpich` inside, and under hydra's ssh
launcher (its -launcher-exec enters the namespaces); under each, a worker that dies ends
the job in time with one line naming it, and nothing of the job is left behind.

Every launch runs under `timeout`, so a hang fails.
"""

import os
import re
import subprocess
import textwrap
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("PARC_BUILD_DIR", REPO / "build"))
PYTHON = os.environ.get("PARC_TEST_PYTHON", "/usr/bin/python3")
MPIEXEC = os.environ.get("PARC_MPIEXEC", "mpiexec.mpich")
CLUSTER_DIR = Path(os.environ.get("PARC_CLUSTER_DIR", "/nonexistent"))
NODES = os.environ.get("PARC_CLUSTER_NODES", "").split()
SUBNET = os.environ.get("PARC_CLUSTER_SUBNET", "")
FAULT_PROBE = BUILD / "tests" / "faults" / "fault_probe"

DIED = re.compile(r"^parc: rank (\d+) \(host ([^,]+), pid (\d+)\) died while (.*) \(killed, "
                  r"crashed, or exited without finalizing MPI\)", re.M)
ANY_PARC_REPORT = re.compile(r"^parc: .*(died while|was running|was waiting|was finalizing)",
                             re.M)
FAULT = re.compile(r"^FAULT rank (\d+) pid (\d+) at ([0-9.]+)$", re.M)
DETECTION_LIMIT = 10.0

pytestmark = pytest.mark.skipif(not NODES, reason="run by tests/cluster/cluster.sh")

HOSTS_APP = textwrap.dedent('''
    import socket
    import sys

    import numpy as np
    import parc


    @parc.closure
    def where(x):
        return socket.gethostname()


    def main():
        with parc.TaskFarm() as farm:
            hosts = set(farm.map(where, range(4 * parc.workers())))
        owners = [parc.Proxy.create(np.arange, 100_000, dtype=np.int64, owner=r)
                  for r in range(1, parc.size())]
        sums = {int(p.resolve().sum()) for p in owners}
        print("HOSTS", socket.gethostname(), ",".join(sorted(hosts)), "SUMS", sums, flush=True)


    if __name__ == "__main__":
        parc.run(main)
''')


def environment(extra=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(BUILD / "python")
    env.pop("PARC_SERIAL", None)
    env.update(extra or {})
    return env


class Run:
    def __init__(self, completed, started, ended):
        self.status = completed.returncode
        self.output = completed.stdout + completed.stderr
        self.started, self.ended = started, ended


def run(command, timeout=90, env=None, cwd=None):
    started = time.time()
    completed = subprocess.run(["timeout", "-k", "5", str(timeout), *map(str, command)],
                               capture_output=True, text=True, env=environment(env), cwd=cwd)
    result = Run(completed, started, time.time())
    assert result.status != 124, f"timed out after {timeout} s: {command}\n{result.output}"
    return result


def leftovers(tag):
    """Live processes of a job whose command line holds `tag` (ranks, watchers)."""
    listing = subprocess.run(["ps", "-eo", "stat=,args="], capture_output=True, text=True).stdout
    return [line for line in listing.splitlines()
            if tag in line and not line.lstrip().startswith("Z") and "ps -eo" not in line]


def assert_nothing_left(tag, output):
    deadline = time.time() + 10
    while leftovers(tag) and time.time() < deadline:
        time.sleep(0.2)
    assert not leftovers(tag), f"processes left behind: {leftovers(tag)}\n{output}"


@pytest.fixture(scope="session")
def ssh_exec(tmp_path_factory):
    """hydra's -launcher-exec: `ssh [options] host command` run in that host's namespaces
    (nsenter rather than `ip netns exec`, which would remount /sys, and with the node's
    own UTS namespace so the host name is the node's)."""
    script = tmp_path_factory.mktemp("ssh") / "netns-ssh"
    script.write_text(textwrap.dedent(f'''\
        #!/bin/sh
        while [ "${{1#-}}" != "$1" ]; do shift; done
        host=$1; shift
        exec nsenter --net=/var/run/netns/$host --uts={CLUSTER_DIR}/uts.$host sh -c "$*"
    '''))
    script.chmod(0o755)
    return script


def srun(*command, ranks=3):
    return ["srun", "--mpi=pmi2", "-N", "3", "-n", str(ranks), *command]


def hydra(ssh_exec, *command, ranks=3):
    # The launch host's name resolves to 127.0.0.1: the proxies on the other hosts are
    # told to call back on the bridge's address instead (-localhost).
    return [MPIEXEC, "-launcher", "ssh", "-launcher-exec", ssh_exec, "-hosts", ",".join(NODES),
            "-localhost", f"{SUBNET}.1", "-n", str(ranks), *command]


def sbatch(tmp_path, *command, ranks=3, timeout=60):
    """Submits `mpiexec.mpich -n ranks command` as a batch job over the 3 nodes and waits.
    The result is mpiexec's: its exit status, the job's output, and when mpiexec ended
    (sbatch --wait polls for the end of the job, seconds later)."""
    script = tmp_path / "job.sh"
    output = tmp_path / "job.out"
    quoted = " ".join(f"'{c}'" for c in map(str, command))
    script.write_text(f"#!/bin/sh\n{MPIEXEC} -n {ranks} {quoted}\nstatus=$?\n"
                      f"echo \"JOB ENDED $(date +%s.%N) STATUS $status\"\nexit $status\n")
    result = run(["sbatch", "--wait", "-N", "3", "-n", str(ranks), "--time=1",
                  "-o", output, script], timeout=timeout)
    text = output.read_text()
    ended = re.search(r"^JOB ENDED ([0-9.]+) STATUS (\d+)$", text, re.M)
    assert ended, f"the batch job did not run to its end\n{text}\n{result.output}"
    return Run(subprocess.CompletedProcess([], int(ended.group(2)), text, result.output),
               result.started, float(ended.group(1)))


LAUNCHERS = ["srun", "sbatch", "hydra"]


def launch(launcher, tmp_path, ssh_exec, command, ranks=3, env=None):
    if env:
        command = ["env", *(f"{k}={v}" for k, v in env.items()), *map(str, command)]
    if launcher == "srun":
        return run(srun(*command, ranks=ranks))
    if launcher == "hydra":
        return run(hydra(ssh_exec, *command, ranks=ranks))
    return sbatch(tmp_path, *command, ranks=ranks)


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_cpp_example(launcher, tmp_path, ssh_exec):
    result = launch(launcher, tmp_path, ssh_exec, [BUILD / "examples" / "pi_farm"], ranks=4)
    assert result.status == 0, result.output
    assert re.search(r"pi ~= 3\.1\d* from \d+ darts on 3 workers", result.output), result.output
    assert not ANY_PARC_REPORT.search(result.output), result.output


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_python_example(launcher, tmp_path, ssh_exec):
    result = launch(launcher, tmp_path, ssh_exec, [PYTHON, REPO / "examples" / "python" / "pi.py"],
                    ranks=3)
    assert result.status == 0, result.output
    assert re.search(r"3\.1\d*", result.output), result.output
    assert not ANY_PARC_REPORT.search(result.output), result.output


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_tasks_and_a_proxy_read_span_the_hosts(launcher, tmp_path, ssh_exec):
    app = tmp_path / "hosts.py"
    app.write_text(HOSTS_APP)
    result = launch(launcher, tmp_path, ssh_exec, [PYTHON, app], ranks=4)
    assert result.status == 0, result.output
    found = re.search(r"^HOSTS (\S+) (\S+) SUMS \{(\d+)\}$", result.output, re.M)
    assert found, result.output
    assert found.group(1) in NODES
    worker_hosts = set(found.group(2).split(","))
    assert worker_hosts <= set(NODES) and len(worker_hosts | {found.group(1)}) == 3, result.output
    assert int(found.group(3)) == sum(range(100_000))


def check_one_death(result, tag, fault_line_expected=True):
    output = result.output
    fault = FAULT.search(output)
    assert fault, f"the fault did not happen\n{output}"
    died = DIED.findall(output)
    assert len(died) == 1, f"expected one report of a death, got {died}\n{output}"
    rank, host, pid, what = died[0]
    assert (rank, pid) == (fault.group(1), fault.group(2)), output
    assert host in NODES, output
    assert re.fullmatch(r"running task \d+: probe_task", what), output
    assert result.status != 0, output
    detection = result.ended - float(fault.group(3))
    assert detection < DETECTION_LIMIT, f"the job took {detection:.1f} s to end\n{output}"
    assert_nothing_left(tag, output)
    print(f"TIMING ended {detection:.2f} s after the fault, exit status {result.status}")


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_a_worker_killed_ends_the_job(launcher, tmp_path, ssh_exec):
    tag = f"cluster-{uuid.uuid4().hex[:12]}"
    result = launch(launcher, tmp_path, ssh_exec, [FAULT_PROBE, tag], ranks=3,
                    env={"PARC_FAULT": "kill"})
    check_one_death(result, tag)


def test_srun_kill_on_bad_exit_blames_only_the_dead_rank(tmp_path):
    tag = f"cluster-{uuid.uuid4().hex[:12]}"
    result = run(["srun", "-K", "--mpi=pmi2", "-N", "3", "-n", "6", "env", "PARC_FAULT=kill",
                  FAULT_PROBE, tag])
    check_one_death(result, tag)


def test_scancel_is_reported_as_a_cancel(tmp_path):
    tag = f"cluster-{uuid.uuid4().hex[:12]}"
    name = f"parc-cancel-{tag}"
    command = srun(PYTHON, "-c", "import time, parc; parc.run(lambda: time.sleep(60))", tag)
    job = subprocess.Popen(["timeout", "-k", "5", "60", "srun", "-J", name, *command[1:]],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           env=environment())
    deadline = time.time() + 30
    while time.time() < deadline:
        time.sleep(0.5)
        if len(leftovers(tag)) >= 6:  # 3 ranks and their watchers are up
            break
    time.sleep(1)
    subprocess.run(["scancel", "-n", name], check=True)
    started = time.time()
    output, _ = job.communicate(timeout=60)
    took = time.time() - started
    assert job.returncode not in (0, 124), output
    assert took < DETECTION_LIMIT, f"{took:.1f} s\n{output}"
    cancels = re.findall(r"^parc: cancelled \(SIGTERM\): rank (\d+) .*$", output, re.M)
    assert len(cancels) == 1, output
    assert not DIED.search(output), output
    assert_nothing_left(tag, output)
    print(f"TIMING scancel: ended after {took:.2f} s, exit status {job.returncode}")


def test_finalize_over_tcp_never_hangs(tmp_path):
    """MPICH 4.0.2 over UCX's tcp transport now and then spins in MPI_Finalize
    (pmodels/mpich#6596): parc leaves finalize after PARC_FINALIZE_TIMEOUT, silently, with
    the job's exit status."""
    for _ in range(3):
        result = run(srun(BUILD / "examples" / "pi_farm", ranks=3), timeout=60,
                     env={"UCX_TLS": "tcp", "PARC_FINALIZE_TIMEOUT": "3"})
        assert result.status == 0, result.output
        assert "pi ~=" in result.output
        assert not ANY_PARC_REPORT.search(result.output), result.output
