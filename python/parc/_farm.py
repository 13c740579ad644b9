"""parc.TaskFarm, a concurrent.futures.Executor over the workers, and parc.Future.

The manager makes progress in the thread that waits (result(), map's iteration,
as_completed, wait, done()), with the GIL released while it waits for MPI.
"""

import bisect
import concurrent.futures
import functools
import itertools
import pickle
import threading
import time

from . import _closures, _codec, _core, _errors, _progress, _runtime, _task
from ._cpp import CppClosure
from ._errors import ParallelException

_POLICIES = ("fail_fast", "collect_all")
_RESULT, _ERROR, _CANCELLED = 0, 1, 2


def _name_of(fn):
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def _decoder(fn):
    """How the results of fn arrive: C++ closures in their own layout, else pickled."""
    return fn.decode if isinstance(fn, CppClosure) else _codec.decode


def _encode_call(fn, prefix, args, kwargs):
    """The payload parts of one task; an unpicklable argument is named in a TypeError."""
    if isinstance(fn, CppClosure):
        return fn.encode(args, kwargs)
    try:
        if kwargs:
            return [bytes([prefix[0] | _task.FLAG_KWARGS]), prefix[1:],
                    *_codec.encode((args, kwargs))]
        return [prefix, *_codec.encode(args)]
    except Exception as error:
        named = list(enumerate(args)) + list((kwargs or {}).items())
        for position, value in named:
            try:
                pickle.dumps(value, protocol=5)
            except Exception as problem:
                which = (f"argument {position + 1}" if isinstance(position, int)
                         else f"keyword argument {position!r}")
                raise TypeError(
                    f"parc: {which} of {_name_of(fn)} ({type(value).__name__}) cannot be "
                    f"pickled, so it cannot be sent to a worker: {problem}. Pass picklable "
                    "values (or what the worker needs to rebuild them).") from error
        raise TypeError(f"parc: the arguments of {_name_of(fn)} cannot be pickled: {error}") \
            from error


def failure_options(manager, policy, retries, retry_on, timeout):
    """Checks the failure options every manager takes (policy, retries, retry_on,
    timeout); returns the retry filter _core calls with an error tuple, or None."""
    if policy not in _POLICIES:
        raise ValueError(f"{manager}: policy must be one of {_POLICIES}, got {policy!r}")
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise ValueError(f"{manager}: retries must be an int >= 0, got {retries!r}")
    if retry_on is None:
        retry_on = ()
    if isinstance(retry_on, type):
        retry_on = (retry_on,)
    retry_on = tuple(retry_on)
    for kind in retry_on:
        if not (isinstance(kind, type) and issubclass(kind, BaseException)):
            raise TypeError(f"{manager}: retry_on takes exception types, got {kind!r}")
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ValueError(f"{manager}: timeout must be a number of seconds > 0 or None, got "
                         f"{timeout!r}")
    if not retry_on:
        return None

    def retry_filter(error):
        chunk = _errors.rebuild_chunk(error, 0)  # a map chunk: retried if any input matches
        members = chunk[0] if chunk is not None else [_errors.rebuild(error)]
        return any(isinstance(member, retry_on) for member in members)

    return retry_filter


def _raise_group(message, errors):
    group = ParallelException(message, errors)
    # Serial mode: the first member carries the closure's live traceback; raising the
    # group on top of it lets pdb's post-mortem stop at the line that raised.
    raise group.with_traceback(errors[0].__traceback__)


class Future(concurrent.futures.Future):
    """concurrent.futures.Future of one task; waiting on it makes the farm progress."""

    def __init__(self, farm, index, decode=_codec.decode):
        super().__init__()
        self._parc_farm = farm
        self._parc_index = index
        self._parc_decode = decode

    def done(self):
        if not concurrent.futures.Future.done(self):
            self._parc_farm._poll()
        return concurrent.futures.Future.done(self)

    def result(self, timeout=None):
        self._parc_farm._wait_for(lambda: concurrent.futures.Future.done(self), timeout)
        return super().result(timeout=0)

    def exception(self, timeout=None):
        self._parc_farm._wait_for(lambda: concurrent.futures.Future.done(self), timeout)
        return super().exception(timeout=0)

    def cancel(self):
        """Cancels the task if no worker has it yet; False once it runs or ran."""
        if concurrent.futures.Future.done(self):
            return self.cancelled()
        if self._parc_farm._cancel(self._parc_index):
            return super().cancel()
        return False

    def _parc_complete(self, index, kind, data):
        if concurrent.futures.Future.done(self):
            return
        if kind == _RESULT:
            try:
                value = self._parc_decode(memoryview(data))
            except Exception as error:
                error.add_note(f"parc: the result of task #{index} could not be unpickled on "
                               "the manager")
                self.set_exception(error)
                return
            self.set_result(value)
        elif kind == _ERROR:
            self.set_exception(_errors.rebuild(data))
        else:
            super().cancel()


class _MapRun:
    """One farm.map: submits a window ahead of the consumer, yields in input order."""

    def __init__(self, farm, fn, iterables, timeout, chunksize, progress):
        self.farm = farm
        self.name = _name_of(fn)
        self.chunked = chunksize is not None
        self.chunksize = chunksize
        if self.chunked:
            if isinstance(fn, CppClosure):
                raise ValueError(f"parc: chunksize is for Python callables; {fn!r} is "
                                 "batched automatically")
            if not isinstance(chunksize, int) or chunksize < 1:
                raise ValueError(f"parc: chunksize must be a positive int, got {chunksize!r}")
            self.call = functools.partial(_task.run_chunk, fn, farm._policy == "fail_fast")
            items = zip(*iterables)
            self.items = iter(lambda: list(itertools.islice(items, chunksize)), [])
        else:
            self.call = fn
            self.items = zip(*iterables)
        self.closure, self.prefix = _closures.resolve(self.call)
        self.decode = _decoder(self.call)
        self.deadline = None if timeout is None else time.monotonic() + timeout
        total = _progress.length_of(iterables)
        if total is not None and self.chunked:
            total = -(-total // chunksize)
        self.bar = _progress.bar(total, progress, self.name)
        self.window = max(512, 2048 * _core.workers())
        # The farm numbers tasks for all its users: each run of consecutive farm indexes
        # this map got is (its first index, the position of its first input).
        self.segment_indexes = []
        self.segment_positions = []
        self.submitted = 0
        self.inputs = 0  # submitted inputs: a chunk has several
        self.next_out = 0
        self.ready = {}  # position -> result buffer, until its turn
        self.errors = {}  # position -> its exceptions (a chunk's: one per failed input)
        self.earlier = {}  # position of a failed chunk -> its results before the failure
        self.exhausted = False
        self.failed_at = None  # collect_all: the first failed position reached
        self.fill()

    def fill(self):
        payloads, inputs = [], 0
        limit = self.window - (self.submitted - self.next_out)
        for item in itertools.islice(self.items, max(0, limit)):
            inputs += len(item) if self.chunked else 1
            payloads.append(_encode_call(self.call, self.prefix,
                                         (item,) if self.chunked else item, None))
        if not payloads:
            self.exhausted = self.exhausted or limit > 0
            return
        first = self.farm._reserve(self, len(payloads))
        self.inputs += inputs
        if not self.segment_indexes or first != self.segment_indexes[-1] + (
                self.submitted - self.segment_positions[-1]):
            self.segment_indexes.append(first)
            self.segment_positions.append(self.submitted)
        self.farm._core.submit(self.closure, payloads, first)
        self.submitted += len(payloads)
        if len(payloads) < limit:
            self.exhausted = True

    def _position(self, index):
        segment = bisect.bisect_right(self.segment_indexes, index) - 1
        return self.segment_positions[segment] + index - self.segment_indexes[segment]

    def _forget_finished_segments(self):
        # Every input before next_out has been received: the segments wholly before it
        # are no longer looked up. Trimmed in bulk, so each result costs O(1) on average.
        finished = bisect.bisect_right(self.segment_positions, self.next_out) - 1
        if finished > 64:
            del self.segment_indexes[:finished]
            del self.segment_positions[:finished]

    def _parc_complete(self, index, kind, data):
        position = self._position(index)
        if self.bar is not None:
            self.bar.update(1)
        if kind == _RESULT:
            if self.failed_at is None:
                self.ready[position] = data
        elif kind == _ERROR:
            if self.chunked:
                self._chunk_failed(position, data)
            else:
                self.errors[position] = [_errors.rebuild(data, position)]
        # cancelled: only after a fail_fast failure, which is raised instead

    def _chunk_failed(self, position, error):
        first_input = position * self.chunksize  # every chunk but the last is full
        chunk = _errors.rebuild_chunk(error, first_input)
        if chunk is None:  # failed as a whole (a timeout): named by its first input
            self.errors[position] = [_errors.rebuild(error, first_input)]
            return
        self.errors[position], earlier = chunk
        if earlier is not None and self.failed_at is None:
            self.earlier[position] = earlier

    def __iter__(self):
        try:
            while True:
                if self.errors and self.farm._policy == "fail_fast":
                    self.fail()
                if self.next_out in self.errors and self.failed_at is None:
                    self.failed_at = self.next_out
                    self.ready.clear()
                    earlier = self.earlier.pop(self.next_out, None)
                    self.earlier.clear()
                    if earlier is not None:  # a chunk's inputs before its first failure
                        yield from pickle.loads(earlier)
                if self.failed_at is not None:
                    self.drain()
                    self.fail()
                if self.next_out in self.ready:
                    data = self.ready.pop(self.next_out)
                    self.next_out += 1
                    self._forget_finished_segments()
                    if not self.exhausted:
                        self.fill()
                    value = self.decode(memoryview(data))
                    if self.chunked:
                        yield from value
                    else:
                        yield value
                    continue
                if self.exhausted and self.next_out >= self.submitted:
                    return
                self.farm._wait_once(self.deadline, self.name)
        finally:
            self.close()

    def drain(self):
        """collect_all after a failure: run every remaining input, keep only errors."""
        while not (self.exhausted and self.farm._routes_of(self) == 0):
            self.next_out = self.submitted  # results are dropped from here on
            if not self.exhausted:
                self.fill()
            if self.farm._routes_of(self):
                self.farm._wait_once(self.deadline, self.name)

    def fail(self):
        errors = [e for position in sorted(self.errors) for e in self.errors[position]]
        if self.farm._policy == "fail_fast":
            message = (f"{self.name} failed; fail_fast cancelled the tasks that had not "
                       "started")
        elif self.chunked:
            message = f"{self.name}: {len(errors)} of {self.inputs} inputs failed"
        else:
            message = f"{self.name}: {len(errors)} of {self.submitted} tasks failed"
        _raise_group(message, errors)

    def close(self):
        self.farm._forget(self)
        if self.bar is not None:
            self.bar.close()


class TaskFarm(concurrent.futures.Executor):
    """Runs tasks on the worker ranks with dynamic load balancing.

    policy="fail_fast" (default) cancels what has not started at the first failure and
    raises; "collect_all" runs everything and raises one ParallelException at the end.
    retries=N re-runs a failed task up to N times (only failures matching retry_on, a
    tuple of exception types, when given); timeout=seconds fails a task that runs longer.
    """

    def __init__(self, policy="fail_fast", retries=0, retry_on=(), timeout=None):
        retry_filter = failure_options("parc.TaskFarm", policy, retries, retry_on, timeout)
        _runtime.check_manager("parc.TaskFarm")
        self._policy = policy
        self._core = _core.Farm(policy, retries, retry_filter, float(timeout or 0))
        self._routes = {}  # farm index -> Future or _MapRun
        self._counts = {}  # _MapRun -> its routes
        self._next_index = 0
        self._lock = threading.RLock()
        self._shut_down = False

    # -- the Executor API -------------------------------------------------------------

    def submit(self, fn, /, *args, **kwargs):
        """Schedules fn(*args, **kwargs) on a worker; returns a parc.Future."""
        with self._lock:
            self._check_open()
            closure, prefix = _closures.resolve(fn)
            payload = _encode_call(fn, prefix, args, kwargs)
            future = Future(self, self._next_index, _decoder(fn))
            self._routes[self._next_index] = future
            self._next_index += 1
            self._core.submit(closure, [payload], future._parc_index)
            return future

    def submit_batch(self, fn, arguments):
        """Schedules fn(*args) for every args tuple of `arguments`; returns the futures."""
        with self._lock:
            self._check_open()
            closure, prefix = _closures.resolve(fn)
            payloads = []
            for args in arguments:
                if not isinstance(args, tuple):
                    raise TypeError(f"parc: submit_batch takes a list of argument tuples, got "
                                    f"{type(args).__name__} {args!r}; write ({args!r},)")
                payloads.append(_encode_call(fn, prefix, args, None))
            first = self._next_index
            decode = _decoder(fn)
            futures = [Future(self, first + i, decode) for i in range(len(payloads))]
            for future in futures:
                self._routes[future._parc_index] = future
            self._next_index += len(payloads)
            if payloads:
                self._core.submit(closure, payloads, first)
            return futures

    def map(self, fn, *iterables, timeout=None, chunksize=None, progress=None):
        """fn over the zipped iterables, results in input order, streamed (a window of
        tasks ahead of the consumer, so inputs may be unbounded). Tasks are batched
        automatically from their measured run time; chunksize=k sends k items per task.
        progress=True shows a progress bar (default: only when stderr is a terminal and
        the input is long)."""
        if not iterables:
            raise TypeError("parc: map needs at least one iterable")
        with self._lock:
            self._check_open()
            run = _MapRun(self, fn, iterables, timeout, chunksize, progress)
        return iter(run)

    def shutdown(self, wait=True, *, cancel_futures=False):
        with self._lock:
            if self._shut_down:
                return
            self._shut_down = True
            if cancel_futures:
                for index, route in list(self._routes.items()):
                    if isinstance(route, Future):
                        route.cancel()
            if wait:
                self._wait_for(lambda: not self._routes, None)
            self._core.close()

    def __exit__(self, exc_type, exc, tb):
        self.shutdown(wait=True)
        return False

    # -- the manager's side -----------------------------------------------------------

    def _check_open(self):
        if self._shut_down:
            raise RuntimeError("cannot schedule new futures after shutdown")

    def _reserve(self, run, count):
        first = self._next_index
        for index in range(first, first + count):
            self._routes[index] = run
        self._counts[run] = self._counts.get(run, 0) + count
        self._next_index += count
        return first

    def _routes_of(self, run):
        return self._counts.get(run, 0)

    def _forget(self, run):
        with self._lock:
            if self._counts.pop(run, 0):
                for index in [i for i, r in self._routes.items() if r is run]:
                    del self._routes[index]

    def _deliver(self, outcomes):
        for index, kind, data in outcomes:
            route = self._routes.pop(index, None)
            if route is None:
                continue  # a map that has already raised or returned
            if route.__class__ is _MapRun:
                self._counts[route] -= 1
            route._parc_complete(index, kind, data)

    def _poll(self):
        with self._lock:
            self._deliver(self._core.wait(0))

    def _wait_once(self, deadline=None, what="the farm"):
        remaining = -1.0
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"parc: {what} did not finish within its timeout")
        with self._lock:
            self._deliver(self._core.wait(remaining))

    def _wait_for(self, condition, timeout):
        deadline = None if timeout is None else time.monotonic() + timeout
        while not condition():
            if self._core.outstanding() == 0 and not condition():
                self._poll()  # outcomes already collected
                if condition():
                    return
                if not self._routes:
                    raise RuntimeError("parc: waiting for a task this farm does not run")
            remaining = -1.0 if deadline is None else deadline - time.monotonic()
            if deadline is not None and remaining <= 0:
                self._poll()
                return
            with self._lock:
                self._deliver(self._core.wait(remaining))

    def _cancel(self, index):
        with self._lock:
            if self._core.cancel(index):
                self._routes.pop(index, None)
                return True
            return False


def _farm_of(future):
    """The farm whose progress finishes the future; None for others (proxy replies
    progress when polled)."""
    farm = getattr(future, "_parc_farm", None)
    return farm if isinstance(farm, TaskFarm) else None


def _progress_any(pending, deadline):
    """Waits a little for some future of `pending` to finish."""
    farms = {_farm_of(f) for f in pending}
    foreign = None in farms
    farms.discard(None)
    remaining = 0.05 if deadline is None else max(0.0, min(0.05, deadline - time.monotonic()))
    if len(farms) > 1 or foreign:
        remaining = min(remaining, 0.002)  # short turns, so no one waits on another
    for farm in farms:
        with farm._lock:
            farm._deliver(farm._core.wait(remaining))
    if not farms:
        time.sleep(0.001)


def as_completed(fs, timeout=None):
    """Yields the futures of `fs` as they finish (parc's, or any concurrent.futures)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    pending = dict.fromkeys(fs)  # ordered: serial runs yield in the same order
    total = len(pending)
    while pending:
        finished = [f for f in pending if f.done()]
        for future in finished:
            del pending[future]
            yield future
        if not pending:
            return
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(f"{len(pending)} (of {total}) futures unfinished")
        if not finished:
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
