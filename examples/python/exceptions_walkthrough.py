"""Parallel exceptions in Python, one section at a time.

    python3 exceptions_walkthrough.py                       serial, one simulated worker
    PARC_SERIAL=4 python3 exceptions_walkthrough.py         serial, four simulated workers
    mpiexec.mpich -n 4 python3 exceptions_walkthrough.py    rank 0 manages, ranks 1-3 work

Each section prints what the manager sees. The program checks every fact it prints
and exits 1 if one does not hold.
"""

import concurrent.futures
import os
import tempfile
import time

import parc


# --- Exception classes. Defined at module top level, so every rank has them and the
# manager can rebuild a remote exception as its own class.


class BadInput(ValueError):
    """An ordinary exception: it pickles, so it arrives as itself."""


class StepFailed(RuntimeError):
    """Used as the outer exception of a `raise ... from ...` chain."""


class FlakyIO(Exception):
    """A transient failure, worth retrying."""


class SolverDiverged(Exception):
    """Cannot be rebuilt: pickle re-creates an exception as cls(*self.args), and args
    holds only the message while __init__ requires two arguments. It arrives as
    parc.RemoteError. (Pass every argument to super().__init__ to make it travel.)"""

    def __init__(self, step, residual):
        super().__init__(f"residual grew to {residual:g} at step {step}")
        self.step = step
        self.residual = residual


# --- Closures: every rank declares them before parc.run.


@parc.closure
def simulate(x):
    """Fine for x % 3 == 0, BadInput for 1, ZeroDivisionError for 2."""
    if x % 3 == 1:
        raise BadInput(f"input {x}: negative density")
    return 100.0 / (x % 3 - 2)


@parc.closure
def load_step(name):
    steps = {"mesh": 1, "solve": 2}
    try:
        return steps[name]
    except KeyError as e:
        raise StepFailed(f"cannot load step {name!r}") from e


@parc.closure
def solve(step):
    raise SolverDiverged(step, residual=1e12)


@parc.closure
def slow_step(x):
    """Fails at once for x == 0; every other task takes 20 ms."""
    if x == 0:
        raise BadInput("input 0 is invalid")
    time.sleep(0.02)
    return x


@parc.closure
def fetch(x, scratch):
    """Fails with FlakyIO on its first attempt (BadInput every time for x == 3).

    Each attempt appends a line to a file, so the manager can count attempts. (This
    needs a folder all ranks see: fine on one host, and on a shared file system.)"""
    path = os.path.join(scratch, str(x))
    with open(path, "a") as f:
        f.write("attempt\n")
    with open(path) as f:
        attempts = len(f.readlines())
    if x == 3:
        raise BadInput(f"input {x} is invalid")
    if attempts == 1:
        raise FlakyIO(f"input {x}: connection reset")
    return 10 * x


@parc.closure
def nap(seconds):
    time.sleep(seconds)
    return seconds


# --- The walkthrough (rank 0).

failures = []


def check(condition, fact):
    if not condition:
        failures.append(fact)
        print(f"  CHECK FAILED: {fact}")


def section(title):
    print(f"\n== {title}")


def collect_all_and_except_star():
    section("1. collect_all: every task runs; except* sorts the failures by type")
    bad, zero = [], []
    try:
        with parc.TaskFarm(policy="collect_all") as farm:
            list(farm.map(simulate, range(6)))  # an iterator, as with Executor.map
    except* BadInput as group:  # group holds only the BadInput members
        bad = list(group.exceptions)
    except* ZeroDivisionError as group:
        zero = list(group.exceptions)
    for e in bad + zero:
        where, remote_traceback = e.__notes__[-2:]  # parc adds these two last
        print(f"{type(e).__name__}: {e}")
        print(f"  note: {where}")
        print(f"  parc_rank={e.parc_rank} parc_task={e.parc_task} "
              f"remote traceback ends with: {remote_traceback.strip().splitlines()[-1]}")
    check(len(bad) == 2 and len(zero) == 2, "inputs 1 and 4 raise BadInput, 2 and 5 divide by 0")
    check(all(e.parc_rank >= 1 for e in bad + zero), "tasks ran on worker ranks")


def result_raises_the_task_exception():
    section("2. Future.result() raises the task's own exception, not a group")
    with parc.TaskFarm() as farm:
        future = farm.submit(simulate, 4)
        try:
            future.result()
        except BadInput as e:
            print(f"result() raised {type(e).__name__}: {e} (rank {e.parc_rank})")
            check(str(e) == "input 4: negative density", "the message survives")
        else:
            check(False, "result() raises BadInput")


def chains():
    section("3. raise ... from ...: the chain survives")
    with parc.TaskFarm() as farm:
        try:
            farm.submit(load_step, "refine").result()
        except StepFailed as e:
            cause = e.__cause__
            print(f"{type(e).__name__}: {e}")
            print(f"  __cause__: {type(cause).__name__}: {cause}")
            check(isinstance(cause, KeyError), "the cause is the KeyError")


def remote_error():
    section("4. An exception that cannot be rebuilt arrives as parc.RemoteError")
    with parc.TaskFarm() as farm:
        try:
            farm.submit(solve, 7).result()
        except parc.RemoteError as e:
            print(f"parc.RemoteError: {e}")
            print(f"  type_name: {e.type_name}")
            print(f"  message:   {e.message}")
            print(f"  args_repr: {e.args_repr}")
            print(f"  traceback_text ends with: {e.traceback_text.strip().splitlines()[-1]}")
            check(e.type_name.endswith("SolverDiverged"), "RemoteError keeps the type name")
            check(not isinstance(e, SolverDiverged), "and is not a SolverDiverged")


def fail_fast():
    section("5. fail_fast (the default): the first failure cancels what has not started")
    with parc.TaskFarm() as farm:
        try:
            list(farm.map(slow_step, range(40)))
        except* BadInput as group:
            print(f"map raised at once: {[str(e) for e in group.exceptions]}")

        # The policy covers one operation: this batch (separate submits are independent).
        futures = farm.submit_batch(slow_step, [(x,) for x in range(40)])
        parc.wait(futures)
        cancelled = sum(f.cancelled() for f in futures)
        failed = sum(not f.cancelled() and f.exception() is not None for f in futures)
        print(f"submit_batch x40: {failed} failed, {cancelled} cancelled before they started, "
              f"{40 - failed - cancelled} ran")
        try:
            futures[-1].result()
        except concurrent.futures.CancelledError:
            print("futures[-1].result() raised CancelledError")
        check(failed == 1 and cancelled > 0, "one failure, and the rest mostly cancelled")
        check(futures[-1].cancelled(), "the last task never started")


def retries():
    section("6. retries=2, retry_on=(FlakyIO,): transient failures run again")
    with tempfile.TemporaryDirectory() as scratch:
        with parc.TaskFarm(policy="collect_all", retries=2, retry_on=(FlakyIO,)) as farm:
            futures = farm.submit_batch(fetch, [(x, scratch) for x in range(6)])
            parc.wait(futures)
        for x, f in enumerate(futures):
            with open(os.path.join(scratch, str(x))) as attempts_file:
                attempts = len(attempts_file.readlines())
            error = f.exception()
            outcome = f"{type(error).__name__}: {error}" if error else f"result {f.result()}"
            print(f"input {x}: {attempts} attempt(s) -> {outcome}")
            if x == 3:  # BadInput is not in retry_on: not retried
                check(attempts == 1 and isinstance(error, BadInput), "BadInput is not retried")
            else:
                check(attempts == 2 and f.result() == 10 * x, "FlakyIO succeeds on its retry")


def timeouts():
    section("7. timeout=0.3: a task that runs longer fails with parc.TaskTimeout")
    with parc.TaskFarm(policy="collect_all", timeout=0.3) as farm:
        futures = farm.submit_batch(nap, [(0.01,), (1.0,), (0.02,)])
        parc.wait(futures)
    for f in futures:
        error = f.exception()
        print(f"  {type(error).__name__}: {error}" if error else f"  result {f.result()}")
    check(isinstance(futures[1].exception(), parc.TaskTimeout), "nap(1.0) timed out")
    check(futures[0].result() == 0.01 and futures[2].result() == 0.02, "the others did not")


def main():
    print(f"{parc.workers()} worker(s)" + (" (serial)" if parc.serial() else ""))
    collect_all_and_except_star()
    result_raises_the_task_exception()
    chains()
    remote_error()
    fail_fast()
    retries()
    timeouts()
    print(f"\n{len(failures)} check(s) failed" if failures else "\nall checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    parc.run(main)
