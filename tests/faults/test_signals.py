"""Signals from outside the job: Ctrl-C in a terminal (SIGINT to mpiexec's whole process
group), a launcher's or timeout's SIGTERM, and a rank killed while MPI finalizes. Each
ends the job within a few seconds with one parc line that says what happened (never a
crash, never "died while running main" for a rank whose work was done), the shell's
status (130 for Ctrl-C), no false signal names from hydra, and no process left.
"""

import os
import re
import signal
import subprocess
import time
import uuid

import pytest

from conftest import MPIEXEC, PACKAGE_DIR, PYTHON, REPO, app

PROBE = os.environ.get("PARC_FAULT_PROBE", "")
ENDED_WITHIN = 5.0  # seconds from the signal to the end of mpiexec
FALSE_NAMES = re.compile(r"Segmentation fault|signal 11|[Aa]ssert|BAD TERMINATION|"
                         r"died while running main|KeyboardInterrupt")

PYTHON_APP = app(r'''
@parc.closure
def nap(x):
    time.sleep(1)
    return x


def main():
    with parc.TaskFarm() as farm:
        futures = [farm.submit(nap, x) for x in range(40)]
        print("RUNNING", flush=True)
        print("sum", sum(f.result() for f in futures), flush=True)


if __name__ == "__main__":
    parc.run(main)
''')


def leftovers(tag):
    listing = subprocess.run(["ps", "-eo", "stat=,args="], capture_output=True, text=True).stdout
    return [line for line in listing.splitlines()
            if tag in line and not line.lstrip().startswith("Z") and "ps -eo" not in line]


class Job:
    """mpiexec in a session of its own, as a shell starts a foreground job: a terminal's
    Ctrl-C reaches its whole process group."""

    def __init__(self, command, tmp_path, env=None):
        self.tag = f"signal-{uuid.uuid4().hex[:12]}"
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(
            p for p in [PACKAGE_DIR, str(REPO / "tests" / "python")] if p)
        environment.pop("PARC_SERIAL", None)
        environment.update(env or {})
        self.process = subprocess.Popen([*command, self.tag], stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, env=environment,
                                        cwd=tmp_path, start_new_session=True)
        self.lines = []

    def wait_for(self, pattern, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if re.search(pattern, line):
                return re.search(pattern, line)
        self.kill()
        pytest.fail(f"no line matching {pattern!r}\n{''.join(self.lines)}")

    def finish(self, timeout=30):
        """Returns (exit status, all output, seconds from now to the end)."""
        started = time.time()
        try:
            rest, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"the job did not end within {timeout} s\n{''.join(self.lines)}")
        took = time.time() - started
        output = "".join(self.lines) + rest
        deadline = time.time() + 5
        while leftovers(self.tag) and time.time() < deadline:
            time.sleep(0.2)
        assert not leftovers(self.tag), f"left behind: {leftovers(self.tag)}\n{output}"
        return self.process.returncode, output, took

    def kill(self):
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.communicate()


def python_job(tmp_path, ranks):
    script = tmp_path / "app.py"
    script.write_text(PYTHON_APP)
    return Job(["timeout", "-k", "10", "60", MPIEXEC, "-n", str(ranks), PYTHON, str(script)],
               tmp_path)


def probe_job(tmp_path, ranks, fault):
    return Job(["timeout", "-k", "10", "60", MPIEXEC, "-n", str(ranks), PROBE], tmp_path,
               env={"PARC_FAULT": fault})


def interrupt(job):
    """A terminal's Ctrl-C: SIGINT to every process of the foreground job (not to `timeout`,
    which a shell would not have put there)."""
    for pid in subprocess.run(["pgrep", "-g", str(job.process.pid)], capture_output=True,
                              text=True).stdout.split():
        if int(pid) != job.process.pid:
            os.kill(int(pid), signal.SIGINT)


@pytest.mark.parametrize("language", ["python", "cpp"])
@pytest.mark.parametrize("ranks", [2, 4])
def test_ctrl_c_ends_the_job_with_one_line(tmp_path, language, ranks):
    job = python_job(tmp_path, ranks) if language == "python" else probe_job(tmp_path, ranks,
                                                                              "slow")
    job.wait_for(r"^RUNNING")
    time.sleep(0.5)  # tasks are running on every worker
    interrupt(job)
    status, output, took = job.finish()
    assert status == 130, f"exit status {status}\n{output}"
    lines = re.findall(r"^parc: .*$", output, re.M)
    assert len(lines) == 1, output
    assert re.fullmatch(r"parc: interrupted \(SIGINT\): rank 0 \(host [^,]+, pid \d+\) was "
                        r"running main; the job ends", lines[0]), output
    assert not FALSE_NAMES.search(output), output
    assert "sum" not in output, output
    assert took < ENDED_WITHIN, f"{took:.1f} s\n{output}"
    print(f"TIMING Ctrl-C: ended after {took:.2f} s, exit status {status}")


def test_sigterm_to_mpiexec_is_a_cancel(tmp_path):
    """What `timeout` or a batch system does to the launcher: SIGTERM to mpiexec alone,
    which passes it on to the ranks."""
    job = probe_job(tmp_path, 3, "slow")
    job.wait_for(r"^RUNNING")
    time.sleep(0.5)
    mpiexec = subprocess.run(["pgrep", "-g", str(job.process.pid), "-x", "mpiexec.mpich"],
                             capture_output=True, text=True).stdout.split()
    assert len(mpiexec) == 1
    os.kill(int(mpiexec[0]), signal.SIGTERM)
    status, output, took = job.finish()
    assert status != 0, output
    lines = re.findall(r"^parc: .*$", output, re.M)
    assert len(lines) == 1, output
    assert re.match(r"parc: cancelled \(SIGTERM\): rank \d+ \(host [^,]+, pid \d+\) was ",
                    lines[0]), output
    assert "died while" not in output, output
    assert took < ENDED_WITHIN, f"{took:.1f} s\n{output}"
    print(f"TIMING SIGTERM: ended after {took:.2f} s, exit status {status}")


@pytest.mark.parametrize("sig, line", [
    (signal.SIGKILL, r"parc: rank 1 \(host [^,]+, pid {pid}\) died while finalizing MPI, its "
                     r"work done \(killed, .*"),
    (signal.SIGTERM, r"parc: cancelled \(SIGTERM\): rank 1 \(host [^,]+, pid {pid}\) was "
                     r"finalizing MPI, its work done; the job ends"),
])
def test_rank_killed_while_finalizing_is_not_blamed_on_main(tmp_path, sig, line):
    job = probe_job(tmp_path, 3, "linger")
    ending = job.wait_for(r"^ENDING rank 1 pid (\d+)")
    time.sleep(0.5)  # rank 1 waits in MPI's finalization for rank 0
    os.kill(int(ending.group(1)), sig)
    status, output, _ = job.finish()
    assert status != 0, output
    lines = re.findall(r"^parc: .*$", output, re.M)
    assert len(lines) == 1, output
    assert re.fullmatch(line.format(pid=ending.group(1)), lines[0]), output
    assert "running main" not in output, output
    print(f"TIMING {sig.name} in finalize: exit status {status}")
