"""parc.Future, as_completed and wait: on rank 0 for the managers' tasks, and on any rank
for proxies' replies (p.async_).

A Future completes through its driver: the manager operation or the proxy reply it
belongs to, which provides _poll(), _wait_for(condition, timeout) and _cancel(index),
and says completes_on_its_own = True when the progress engine completes its futures
(they need no polling).
"""

import concurrent.futures
from concurrent.futures import _base
import threading
import time

from . import _codec, _core, _errors

# The kinds of outcome _core hands over: (index, kind, data). RAISED is the manager's own:
# a task that never ran fails with the exception `data` (a dependency failed, ...).
RESULT, ERROR, CANCELLED, RAISED = 0, 1, 2, 3

_PENDING, _RUNNING, _FINISHED = _base.PENDING, _base.RUNNING, _base.FINISHED
_CANCELLED_STATES = (_base.CANCELLED, _base.CANCELLED_AND_NOTIFIED)
_DONE_STATES = frozenset((*_CANCELLED_STATES, _FINISHED))
# Taken by a future's first completion while it has no Condition, and to create one: a
# waiter that creates it then sees the state set, or the completion sees the Condition.
_birth = threading.Lock()


class FutureNotPicklable(TypeError):
    """A parc.Future met inside an object being pickled (a task's argument)."""


class Future(concurrent.futures.Future):
    """concurrent.futures.Future of one task. It completes on its own (parc's progress
    engine); waiting on it from the manager drives the scheduler directly.

    Lighter than the stdlib's: its threading.Condition is made only when something waits
    on it through the Condition (concurrent.futures.wait, as_completed, a done callback,
    cancel), not for every task; until then completing it takes one short global lock,
    and done(), result() and exception() of a finished future take none."""

    def __init__(self, driver, index, decode=_codec.decode, position=None):
        # concurrent.futures.Future.__init__ but for its Condition (see __getattr__)
        self._state = _PENDING
        self._result = None
        self._exception = None
        self._waiters = []
        self._done_callbacks = []
        self._parc_driver = driver
        self._parc_index = index
        self._parc_decode = decode
        self._parc_position = position  # in its submit_batch: named in its error

    def __getattr__(self, name):
        if name != "_condition":
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")
        with _birth:  # one Condition, even when two threads ask at once
            return self.__dict__.setdefault("_condition", threading.Condition())

    def _set_quietly(self, result, exception):
        """Completes a future nobody waits on through its Condition, and runs its hooks
        (_parc_on_done): True, or False when it has a Condition (the stdlib's way then
        notifies its waiters)."""
        with _birth:
            if "_condition" in self.__dict__:
                return False
            state = self._state
            if state not in _DONE_STATES:
                self._result = result
                self._exception = exception
                self._state = _FINISHED  # last: a reader that sees it sees the outcome
                hooks = self.__dict__.pop("_parc_hooks", None)
                if hooks is None:
                    return True  # no waiters nor callbacks: they come with the Condition
        if state in _DONE_STATES:
            raise concurrent.futures.InvalidStateError(f"{state}: {self!r}")
        for hook in hooks:
            hook(self)
        return True

    def set_result(self, result):
        if not self._set_quietly(result, None):
            super().set_result(result)
            self._parc_run_hooks()

    def set_exception(self, exception):
        if not self._set_quietly(None, exception):
            super().set_exception(exception)
            self._parc_run_hooks()

    def _parc_on_done(self, hook):
        """Calls hook(self) once this future is done (now, when it is), on the thread that
        completes it. Unlike add_done_callback it needs no Condition, so completing a
        future nobody waits on stays light. Tasks that take this future as an argument
        wait on it this way."""
        with _birth:  # a completion takes the hooks under it, after setting the state
            if self._state not in _DONE_STATES:
                self.__dict__.setdefault("_parc_hooks", []).append(hook)
                return
        hook(self)

    def _parc_run_hooks(self):
        with _birth:
            hooks = self.__dict__.pop("_parc_hooks", None)
        for hook in hooks or ():
            hook(self)

    def __reduce__(self):
        raise FutureNotPicklable(
            "a parc.Future cannot be pickled: pass it to submit, submit_batch or map as an "
            "argument of its own (the task then waits for it and gets its value), or pass "
            "its .result()")

    def done(self):
        if self._state in _DONE_STATES:
            return True
        self._parc_driver._poll()
        return self._state in _DONE_STATES

    def cancelled(self):
        return self._state in _CANCELLED_STATES

    def running(self):
        return self._state == _RUNNING

    def _parc_wait(self, timeout):
        if self._state not in _DONE_STATES:
            self._parc_driver._wait_for(lambda: self._state in _DONE_STATES, timeout)

    def result(self, timeout=None):
        if self._state != _FINISHED:
            self._parc_wait(timeout)
        if self._state == _FINISHED and self._exception is None:
            result = self._result
            if type(result) is _codec.KeptResult:  # read from its holder, once
                result = self._result = result.value()
            return result
        return super().result(timeout=0)  # raises, as the stdlib's says

    def exception(self, timeout=None):
        if self._state != _FINISHED:
            self._parc_wait(timeout)
        if self._state == _FINISHED:
            return self._exception
        return super().exception(timeout=0)

    def cancel(self):
        """Cancels the task if no worker has it yet; False once it runs or ran."""
        if self._state in _DONE_STATES:
            return self.cancelled()
        if self._parc_driver._cancel(self._parc_index):
            return cancel_unstarted(self)
        return False

    def _parc_complete(self, index, kind, data):
        if self._state in _DONE_STATES:
            return
        try:
            if kind == RESULT:
                try:
                    value = self._parc_decode(memoryview(data))
                except Exception as error:
                    error.add_note(f"parc: the result of task #{index} could not be "
                                   "unpickled on the manager")
                    self.set_exception(error)
                    return
                self.set_result(value)
            elif kind == ERROR:
                self.set_exception(_errors.rebuild(data, self._parc_position))
            elif kind == RAISED:
                self.set_exception(data)
            else:
                cancel_unstarted(self)
        except concurrent.futures.InvalidStateError:
            pass  # cancelled by the user meanwhile


def cancel_unstarted(future):
    """Cancels a future whose task will not run, and says so to its waiters (stdlib
    executors do that when a worker would have taken it: concurrent.futures.wait and
    as_completed see a cancelled future only then)."""
    if not concurrent.futures.Future.cancel(future):
        return False
    future.set_running_or_notify_cancel()
    if isinstance(future, Future):
        future._parc_run_hooks()
    return True


def set_outcome(future, value=None, error=None):
    try:
        if error is None:
            future.set_result(value)
        else:
            future.set_exception(error)
    except concurrent.futures.InvalidStateError:
        pass  # cancelled by the user meanwhile


def _progress_any(pending, deadline):
    """Waits a little for some future of `pending` to finish. Proxy replies complete when
    polled (done()); parc's own futures complete on their own."""
    remaining = 0.05 if deadline is None else max(0.0, min(0.05, deadline - time.monotonic()))
    if any(not getattr(getattr(f, "_parc_driver", None), "completes_on_its_own", False)
           for f in pending):
        remaining = min(remaining, 0.002)  # foreign futures: poll them often
    _core.progress(lambda: any(f.done() for f in pending), remaining)


def as_completed(fs, timeout=None):
    """Yields the futures of `fs` as they finish (parc's, or any concurrent.futures)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    pending = dict.fromkeys(fs)  # ordered: serial runs yield in the same order
    total = len(pending)
    fs = None
    while pending:
        finished = [f for f in pending if f.done()]
        found = bool(finished)
        for future in finished:
            del pending[future]
        future = None
        finished.reverse()
        while finished:  # holds no future it has yielded (bpo-14406)
            yield finished.pop()
        if not pending:
            return
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(f"{len(pending)} (of {total}) futures unfinished")
        if not found:
            _progress_any(pending, deadline)


FIRST_COMPLETED = concurrent.futures.FIRST_COMPLETED
FIRST_EXCEPTION = concurrent.futures.FIRST_EXCEPTION
ALL_COMPLETED = concurrent.futures.ALL_COMPLETED


def wait(fs, timeout=None, return_when=ALL_COMPLETED):
    """concurrent.futures.wait for parc futures: (done, not_done)."""
    if return_when not in (FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED):
        raise ValueError(f"parc.wait: unknown return_when {return_when!r}")
    deadline = None if timeout is None else time.monotonic() + timeout
    fs = set(fs)
    while True:
        done = {f for f in fs if f.done()}
        not_done = fs - done
        if (not not_done
                or (return_when == FIRST_COMPLETED and done)
                or (return_when == FIRST_EXCEPTION
                    and any(not f.cancelled() and f.exception(0) is not None for f in done))
                or (deadline is not None and time.monotonic() >= deadline)):
            return concurrent.futures.wait([], 0)._replace(done=done, not_done=not_done)
        _progress_any(not_done, deadline)
