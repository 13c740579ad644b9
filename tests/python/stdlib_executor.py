"""CPython 3.11's own test_concurrent_futures, run against parc.TaskFarm.

Run it as a parc program, from the repository (test_stdlib_executor.py launches it in
the four modes: serially, PARC_SERIAL=3, mpiexec.mpich -n 2 and -n 3):

    export PYTHONPATH=$PWD/build/python
    /usr/bin/python3 tests/python/stdlib_executor.py
    PARC_SERIAL=3 /usr/bin/python3 tests/python/stdlib_executor.py
    mpiexec.mpich -n 3 /usr/bin/python3 tests/python/stdlib_executor.py

It needs Debian's libpython3.11-testsuite (test.test_concurrent_futures). On rank 0,
inside parc.run, it runs with unittest the stdlib's executor-agnostic test mixins
(ProcessPoolExecutorTest with its ExecutorTest, ProcessPoolShutdownTest with its
ExecutorShutdownTest, WaitTests, AsCompletedTests) with `self.executor = parc.TaskFarm()`.
The test code is the stdlib's; only the executor differs. Then it prints one line

    STDLIB {"ran": N, "failures": [...], "errors": [...], "hung": [...], ...}

and exits 1 when any test outside KNOWN_DIFFERENCES failed, erred or hung, or when a
test of KNOWN_DIFFERENCES passed (the difference is gone: remove it from the table).

- SKIPPED: tests that cannot apply to parc (process counts, max_workers, mp_context,
  ProcessPoolExecutor internals). unittest reports them as skipped with the reason.
- KNOWN_DIFFERENCES: tests that apply but fail because of a deliberate, documented
  difference. They run as unittest expected failures.
- Everything else runs and must pass.

Each test (setUp, test, tearDown, cleanups) has a time limit, PARC_STDLIB_TEST_TIMEOUT
seconds (default 15): SIGALRM raises TestTimedOut in the main thread (parc's waits check
for signals), which unittest records as an error of that test; the test is listed under
"hung" (and under no other key). While the test goes on (tearDown stuck too), the alarm
is raised again every 10 s. Should it still not end (the exception swallowed), a
watchdog thread prints the STDLIB line so far, with "aborted_in": that test, dumps every
thread's stack and exits the process with status 3. Each test's name is printed to
stderr as it starts (unittest verbosity 2), and each failure's traceback as it happens.

test.support hooks, deliberately bypassed: the stdlib's BaseTestCase (its setUp/tearDown
call threading_helper.threading_setup/threading_cleanup and support.reap_children) and
setUpModule (multiprocessing.util._cleanup_tests, threading cleanup) are not used.
reap_children would reap the watcher process parc's runtime forks on every rank under
mpiexec (comm/src/flight_record.cpp), threading_cleanup would wait 30 s for any executor thread and only warn, and
there is no multiprocessing state to clean up. support.SHORT_TIMEOUT (30 s), which
test_no_stale_references waits on, is lowered to 10 s so that a failure there is a
failure, not a time-out.
"""

import concurrent.futures
import faulthandler
import functools
import json
import os
import signal
import sys
import threading
import time
import types
import unittest

import parc

try:
    from test import support
    import test.test_concurrent_futures as stdlib
except ModuleNotFoundError as missing:
    raise SystemExit(f"stdlib_executor: {missing}: CPython's test suite is not installed "
                     "(apt-get install libpython3.11-testsuite)")

TEST_TIMEOUT = float(os.environ.get("PARC_STDLIB_TEST_TIMEOUT", "15"))
support.SHORT_TIMEOUT = 10.0
support.verbose = 0  # ExecutorMixin.tearDown would print each test's time on stdout

_NO_MAX_WORKERS = "parc.TaskFarm takes no max_workers: its workers are the MPI ranks"

# name -> why the test cannot apply to parc.TaskFarm. Skipped, with that reason.
SKIPPED = {
    "ParcExecutorTest.test_max_workers_negative": _NO_MAX_WORKERS,
    "ParcExecutorTest.test_max_workers_too_large": _NO_MAX_WORKERS + " (Windows limit)",
    "ParcExecutorTest.test_killed_child": "terminates one of executor._processes",
    "ParcExecutorTest.test_ressources_gced_in_workers":
        "needs a multiprocessing context: a Manager's proxies only authenticate in "
        "children of this process, not on other MPI ranks",
    "ParcExecutorTest.test_saturation": "counts executor._processes against _max_workers",
    "ParcExecutorTest.test_idle_process_reuse_one": "counts executor._processes",
    "ParcExecutorTest.test_idle_process_reuse_multiple": "counts executor._processes",
    "ParcExecutorTest.test_max_tasks_per_child":
        "max_tasks_per_child and mp_context: worker processes are not respawned",
    "ParcExecutorTest.test_max_tasks_per_child_defaults_to_spawn_context":
        "max_tasks_per_child and mp_context: worker processes are not respawned",
    "ParcExecutorTest.test_max_tasks_early_shutdown":
        "max_tasks_per_child and mp_context: worker processes are not respawned",
    "ParcShutdownTest.test_processes_terminate": "counts executor._processes",
    "ParcShutdownTest.test_interpreter_shutdown":
        "runs `python -c 'from concurrent.futures import <executor_type>'` without "
        "parc.run",
    "ParcShutdownTest.test_submit_after_interpreter_shutdown":
        "runs `python -c 'from concurrent.futures import <executor_type>'` without "
        "parc.run",
    "ParcShutdownTest.test_hang_gh83386":
        "runs `python -c 'from concurrent.futures import <executor_type>'` without "
        "parc.run",
}

# name -> the deliberate, documented difference that makes the test fail. Run as
# expected failures: one that passes makes the run fail, so a change shows up.
KNOWN_DIFFERENCES = {
    "ParcExecutorTest.test_traceback":
        "the remote traceback is the exception's last note ('remote traceback:', "
        "docs/python-exceptions.md), not a __cause__ of the private class "
        "concurrent.futures.process._RemoteTraceback",
}

# Tests that build a futures.ProcessPoolExecutor themselves and join its processes,
# call queue and manager thread after shutdown: they run with `futures` (the stdlib
# module's global) standing for concurrent.futures with ProcessPoolExecutor replaced by
# _StandInPool, a parc.TaskFarm whose process-pool handles are empty (parc has no
# processes or threads of its own to join). What they check is the executor's
# behaviour: map results through a with block, after `del executor`, after
# shutdown(wait=False).
STAND_IN_TESTS = {
    "ParcShutdownTest.test_context_manager_shutdown",
    "ParcShutdownTest.test_del_shutdown",
    "ParcShutdownTest.test_shutdown_no_wait",
}


class _Joinable:
    """Stands for a thread or queue feeder thread that parc does not have."""

    def join(self, timeout=None):
        pass

    def join_thread(self):
        pass


class _StandInPool(parc.TaskFarm):
    """futures.ProcessPoolExecutor(max_workers=..., mp_context=...) for the tests of
    STAND_IN_TESTS: a parc.TaskFarm (the arguments are ignored)."""

    def __init__(self, max_workers=None, mp_context=None, **kwargs):
        super().__init__(**kwargs)
        self._processes = {}
        self._call_queue = _Joinable()
        self._executor_manager_thread = _Joinable()


class _FuturesWithStandInPool(types.ModuleType):
    def __getattr__(self, name):
        return getattr(concurrent.futures, name)


_futures_with_stand_in = _FuturesWithStandInPool("concurrent.futures")
_futures_with_stand_in.ProcessPoolExecutor = _StandInPool


class ParcExecutorMixin(stdlib.ExecutorMixin):
    """stdlib.ExecutorMixin with self.executor = parc.TaskFarm(). Its tearDown (shutdown,
    the 300 s check) is the stdlib's."""

    executor_type = parc.TaskFarm

    def setUp(self):
        super(stdlib.ExecutorMixin, self).setUp()  # not ExecutorMixin's: max_workers
        self.t1 = time.monotonic()
        self.executor = parc.TaskFarm(**self.executor_kwargs)
        if f"{type(self).__name__}.{self._testMethodName}" in STAND_IN_TESTS:
            stdlib.futures = _futures_with_stand_in
            self.addCleanup(setattr, stdlib, "futures", concurrent.futures)

    def get_context(self):
        return None  # only the tests of STAND_IN_TESTS call it, for their mp_context


class ParcExecutorTest(ParcExecutorMixin, stdlib.ProcessPoolExecutorTest, unittest.TestCase):
    pass


class ParcShutdownTest(ParcExecutorMixin, stdlib.ProcessPoolShutdownTest, unittest.TestCase):
    pass


class ParcWaitTest(ParcExecutorMixin, stdlib.WaitTests, unittest.TestCase):
    pass


class ParcAsCompletedTest(ParcExecutorMixin, stdlib.AsCompletedTests, unittest.TestCase):
    pass


CLASSES = [ParcExecutorTest, ParcShutdownTest, ParcWaitTest, ParcAsCompletedTest]


def _mark(cls, method, decorate):
    """Overrides cls.method with a decorated wrapper (the stdlib's function untouched)."""
    original = getattr(cls, method)

    @functools.wraps(original)
    def wrapper(self, *args, **kwargs):
        return original(self, *args, **kwargs)

    setattr(cls, method, decorate(wrapper))


def _apply_tables():
    names = {f"{cls.__name__}.{m}": (cls, m)
             for cls in CLASSES for m in unittest.TestLoader().getTestCaseNames(cls)}
    unknown = (set(SKIPPED) | set(KNOWN_DIFFERENCES) | STAND_IN_TESTS) - set(names)
    both = set(SKIPPED) & (set(KNOWN_DIFFERENCES) | STAND_IN_TESTS)
    if unknown or both:
        return (f"stdlib_executor: the tables name unknown tests {sorted(unknown)} or skip "
                f"tests they also run {sorted(both)}")
    for name, reason in SKIPPED.items():
        _mark(*names[name], unittest.skip(reason))
    for name in KNOWN_DIFFERENCES:
        _mark(*names[name], unittest.expectedFailure)
    return None


class TestTimedOut(Exception):
    pass


def _short(test):
    return test.id().split(".", 1)[1] if test.id().startswith("__main__.") else test.id()


# Where unittest runs the test's own code: a time-out is raised only inside these (not
# in unittest's bookkeeping, which would end the whole run).
_TEST_CODE = {getattr(unittest.TestCase, name).__code__
              for name in ("_callSetUp", "_callTestMethod", "_callTearDown", "_callCleanup")}
_RETRY_ALARM = 10.0  # after a time-out, again every 10 s while the test goes on


class _Result(unittest.TextTestResult):
    """Arms the per-test time limit around setUp, the test, tearDown and cleanups;
    records hangs; prints each failure's traceback as it happens."""

    current = None
    started = 0.0
    hung = []
    instance = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _Result.instance = self

    def startTest(self, test):
        super().startTest(test)
        self.stream.flush()
        _Result.current, _Result.started = _short(test), time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, TEST_TIMEOUT)

    def stopTest(self, test):
        signal.setitimer(signal.ITIMER_REAL, 0)
        _Result.current = None
        super().stopTest(test)

    def _report_now(self, kind, test, err):
        self.stream.write(f"\n{kind}: {_short(test)}\n{self._exc_info_to_string(err, test)}")
        self.stream.flush()

    def addError(self, test, err):
        super().addError(test, err)
        self._report_now("ERROR", test, err)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._report_now("FAIL", test, err)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._report_now("EXPECTED FAILURE (KNOWN_DIFFERENCES)", test, err)

    def printErrors(self):
        pass  # printed as they happened


def _on_alarm(signum, frame):
    name = _Result.current
    if name is None:
        return
    inside = frame
    while inside is not None and inside.f_code not in _TEST_CODE:
        inside = inside.f_back
    if inside is None:  # in unittest's own code between two parts of the test
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        return
    if name not in _Result.hung:
        _Result.hung.append(name)
    signal.setitimer(signal.ITIMER_REAL, _RETRY_ALARM)
    raise TestTimedOut(f"{name} did not finish within {TEST_TIMEOUT:g} s "
                       f"(PARC_STDLIB_TEST_TIMEOUT); interrupted here")


def _unique(names, leave_out=()):
    return [n for n in dict.fromkeys(names) if n not in leave_out]


def _summary(result):
    def names(pairs):
        return [_short(test) for test, _ in pairs]

    hung = list(_Result.hung)
    return {
        "ran": result.testsRun,
        "failures": _unique(names(result.failures), hung),
        "errors": _unique(names(result.errors), hung + names(result.failures)),
        "hung": hung,
        "skipped": names(result.skipped),
        "expected_failures": names(result.expectedFailures),
        "unexpected_successes": [_short(t) for t in result.unexpectedSuccesses],
        "workers": parc.workers(),
        "mpi": not parc.serial(),
    }


def _emit(summary):
    sys.stdout.write(f"STDLIB {json.dumps(summary)}\n")
    sys.stdout.flush()


def _watchdog():
    """Ends the process when a test outlives its limit by far (the alarm did not help)."""
    grace = TEST_TIMEOUT + 45.0
    while True:
        time.sleep(1.0)
        name, started = _Result.current, _Result.started
        if name is not None and time.monotonic() - started > grace:
            if name not in _Result.hung:
                _Result.hung.append(name)
            sys.stderr.write(f"\nstdlib_executor: {name} still runs after {grace:g} s; "
                             "stacks of all threads:\n")
            faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
            sys.stderr.flush()
            summary = _summary(_Result.instance)
            summary["aborted_in"] = name
            _emit(summary)
            os._exit(3)


def main():
    problem = _apply_tables()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    signal.signal(signal.SIGALRM, _on_alarm)
    suite = unittest.TestSuite(unittest.TestLoader().loadTestsFromTestCase(cls)
                               for cls in CLASSES)
    runner = unittest.TextTestRunner(stream=sys.stderr, verbosity=2, resultclass=_Result)
    threading.Thread(target=_watchdog, daemon=True,
                     name="stdlib_executor watchdog").start()
    result = runner.run(suite)
    summary = _summary(result)
    _emit(summary)
    bad = summary["failures"] + summary["errors"] + summary["hung"] + \
        summary["unexpected_successes"]
    return 1 if bad else 0


if __name__ == "__main__":
    parc.run(main)
