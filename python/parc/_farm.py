"""parc.TaskFarm, a concurrent.futures.Executor over the workers, and parc.Future.

The manager makes progress in the thread that waits (result(), map's iteration,
as_completed, wait, done()), with the GIL released while it waits for MPI.
"""

import bisect
import concurrent.futures
from concurrent.futures import _base
import functools
import itertools
import pickle
import threading
import time
import weakref

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
        members = [e for _, e in chunk[0]] if chunk is not None else [_errors.rebuild(error)]
        return any(isinstance(member, retry_on) for member in members)

    return retry_filter


def _raise_group(message, errors):
    group = _errors.parallel_exception(message, errors)
    # Serial mode: the first member carries the closure's live traceback; raising the
    # group on top of it lets pdb's post-mortem stop at the line that raised.
    raise group.with_traceback(errors[0].__traceback__)


# Operations that still have tasks to run: a farm shut down with wait=False, or whose
# futures were dropped, still runs what was submitted (as the stdlib's executors do).
_live_operations = set()


class _Operation:
    """One farm operation's tasks in the scheduler: every submit of a farm (independent,
    as in the stdlib), one submit_batch, or one map. Its failure policy covers only its
    own tasks. Outcomes reach it through deliver(), from whichever thread drives."""

    def __init__(self, farm, policy, batching=True, ordered=False):
        self.farm = farm
        self.lock = farm._lock
        self.core = _core.Farm(policy, farm._retries, farm._retry_filter, farm._timeout,
                               self.deliver, batching, ordered)
        self.routes = {}  # index -> Future, or the _MapRun
        self.next_index = 0
        self.sealed = False  # no more tasks will be added
        self.closed = False
        _live_operations.add(self)

    def add(self, route, count):
        """Reserves `count` indexes routed to `route`; returns the first."""
        first = self.next_index
        for index in range(first, first + count):
            self.routes[index] = route
        self.next_index += count
        return first

    def deliver(self, outcomes):
        with self.lock:
            taken = [(self.routes.pop(index, None), index, kind, data)
                     for index, kind, data in outcomes]
            finished = self.sealed and not self.routes
        for route, index, kind, data in taken:
            if route is not None:  # None: a map that has already raised or returned
                route._parc_complete(index, kind, data)
        if finished:
            self.close()

    def seal(self):
        with self.lock:
            self.sealed = True
            finished = not self.routes
        if finished:
            self.close()

    def close(self):
        """Drops the tasks still queued (a map left early); the running ones finish."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            self.routes.clear()
        _live_operations.discard(self)
        self.core.close()

    # -- what parc.Future asks of the operation that completes it ----------------------

    def _poll(self):
        pass  # the progress engine completes futures on its own

    def _wait_for(self, condition, timeout):
        _core.progress(condition, -1.0 if timeout is None else max(0.0, timeout))

    def _cancel(self, index):
        with self.lock:
            if self.closed or not self.core.cancel(index):
                return False
            self.routes.pop(index, None)
            finished = self.sealed and not self.routes
        if finished:
            self.close()
        return True


_PENDING, _RUNNING, _FINISHED = _base.PENDING, _base.RUNNING, _base.FINISHED
_CANCELLED_STATES = (_base.CANCELLED, _base.CANCELLED_AND_NOTIFIED)
_DONE_STATES = frozenset((*_CANCELLED_STATES, _FINISHED))
# Taken by a future's first completion while it has no Condition, and to create one: a
# waiter that creates it then sees the state set, or the completion sees the Condition.
_birth = threading.Lock()


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
        """Completes a future nobody waits on through its Condition: True, or False when
        it has a Condition (the stdlib's way then notifies its waiters)."""
        with _birth:
            if "_condition" in self.__dict__:
                return False
            state = self._state
            if state not in _DONE_STATES:
                self._result = result
                self._exception = exception
                self._state = _FINISHED  # last: a reader that sees it sees the outcome
                return True  # no waiters nor callbacks: they come with the Condition
        raise concurrent.futures.InvalidStateError(f"{state}: {self!r}")

    def set_result(self, result):
        if not self._set_quietly(result, None):
            super().set_result(result)

    def set_exception(self, exception):
        if not self._set_quietly(None, exception):
            super().set_exception(exception)

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
            return self._result
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
            return _cancelled(self)
        return False

    def _parc_complete(self, index, kind, data):
        if self._state in _DONE_STATES:
            return
        try:
            if kind == _RESULT:
                try:
                    value = self._parc_decode(memoryview(data))
                except Exception as error:
                    error.add_note(f"parc: the result of task #{index} could not be "
                                   "unpickled on the manager")
                    self.set_exception(error)
                    return
                self.set_result(value)
            elif kind == _ERROR:
                self.set_exception(_errors.rebuild(data, self._parc_position))
            else:
                _cancelled(self)
        except concurrent.futures.InvalidStateError:
            pass  # cancelled by the user meanwhile


class _ChunkSizer:
    """How many inputs the next chunk of a map or a submit_batch carries: single inputs
    (two per worker in flight) until a chunk's time per input is known, then about
    chunk_seconds of work, at most max_chunk inputs; with a known remainder, a share for
    every worker at the tail, though not below tail_seconds of work. The time per input
    is the worker's (calls only) and is remembered per function and farm."""

    chunk_seconds = 2e-3
    tail_seconds = 50e-6  # the least work a chunk carries at the tail
    max_chunk = 8192  # inputs; past this the per-chunk cost is already < 1%

    def __init__(self, farm, fn, workers, fixed=None):
        self.farm = farm
        self.fn = fn
        self.workers = workers
        self.fixed = fixed  # chunksize=k
        self.per_input = farm._seconds_per_input(fn)
        self.sums = (0.0, 0.0)  # decaying sums of (seconds, inputs)

    def size(self, tasks_in_flight, remaining=None):
        """0: none until a result says how long an input takes (failures say nothing: a
        run whose inputs all fail goes one by one)."""
        if self.fixed is not None:
            return self.fixed
        if self.per_input is None:
            return 1 if tasks_in_flight < 2 * self.workers else 0
        per_input = max(self.per_input, 1e-8)
        size = min(int(self.chunk_seconds / per_input), self.max_chunk)
        if remaining is not None:  # leave work for every worker at the tail ...
            size = min(size, -(-remaining // (2 * self.workers)))
            # ... but not in chunks so short that sending them costs more than they do
            size = max(size, min(int(self.tail_seconds / per_input), self.max_chunk))
        return max(1, size)

    def measured(self, seconds, count):
        """A chunk's calls took `seconds` for `count` inputs (the larger chunks weigh more)."""
        if count:
            self.sums = (0.5 * self.sums[0] + seconds, 0.5 * self.sums[1] + count)
            self.per_input = self.sums[0] / self.sums[1]

    def remember(self):
        if self.fixed is None and self.per_input is not None:
            self.farm._remember_seconds_per_input(self.fn, self.per_input)


def _chunk_flags(star, policy):
    """The payload flags of a chunk of inputs (see _task.run_chunk)."""
    return _task.FLAG_CHUNK | (_task.FLAG_CHUNK_STAR if star else 0) | (
        _task.FLAG_CHUNK_STOP if policy == "fail_fast" else 0)


class _MapRun:
    """One farm.map: submits a window ahead of the consumer, yields in input order.

    A task carries a run of inputs (a chunk): they are pickled in one call and their
    results come back as one list, so a short function costs about what a local call and
    its pickling cost. Chunks are sized from the time per input the worker measures
    (about 2 ms of work each), or by chunksize. Each input is a task of its own where it
    must be: a C++ closure (the C++ farm batches those), a farm with retries or a task
    timeout (each input is retried or timed on its own), a map with a timeout (what
    finished before the deadline is yielded, not held back by the rest of its chunk),
    serial mode (task ids and simulated workers must not depend on timing)."""

    def __init__(self, farm, fn, iterables, timeout, chunksize, progress):
        self.farm = farm
        self.policy = farm._policy
        self.name = _name_of(fn)
        self.fn = fn
        if chunksize is not None:
            if isinstance(fn, CppClosure):
                raise ValueError(f"parc: chunksize is for Python callables; {fn!r} is "
                                 "batched automatically")
            if not isinstance(chunksize, int) or isinstance(chunksize, bool) or chunksize < 1:
                raise ValueError(f"parc: chunksize must be a positive int, got {chunksize!r}")
        self.chunksize = chunksize
        self.workers = _core.workers()
        # Serially, which simulated worker runs an input and the task ids in errors must
        # not depend on timing, so each input is a task there.
        self.chunked = chunksize is not None or not (
            isinstance(fn, CppClosure) or timeout is not None or farm._timeout
            or farm._retries or _core.serial())
        self.total = _progress.length_of(iterables)  # inputs, when known
        self.closure, self.prefix = _closures.resolve(fn)
        self.decode = _decoder(fn)
        if self.chunked:
            star = len(iterables) > 1
            self.prefix = bytes([self.prefix[0] | _chunk_flags(star, self.policy)]) + \
                self.prefix[1:]
            self.items = zip(*iterables) if star else iter(iterables[0])
            self.sizer = _ChunkSizer(farm, fn, self.workers, chunksize)
        else:
            self.items = zip(*iterables)
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.bar = _progress.bar(self.total, progress, self.name)
        self.window = max(512, 2048 * self.workers)  # tasks ahead of the consumer
        # The map's own operation numbers its tasks: a task's index is its position. With
        # a deadline, each result comes back on its own (not held by a slower one batched
        # with it), so that what finished before the deadline is yielded. Ordered: under
        # fail_fast the inputs before a failed one still run, as concurrent.futures' map.
        # Chunks sized here go one per message, so that each comes back as it finishes.
        self.op = _Operation(farm, self.policy, ordered=True,
                             batching=timeout is None and not (self.chunked and chunksize is None))
        self.submitted = 0  # tasks
        self.inputs = 0  # inputs submitted
        self.consumed = 0  # inputs yielded or skipped
        self.next_out = 0  # the position (task) to yield next
        self.chunks = {}  # position -> (first input, inputs) of a chunk not yet consumed
        self.delivered = 0  # outcomes received, for the consumer's wait
        self.ready = {}  # position -> result buffer, until its turn
        self.errors = {}  # position -> its exceptions (a chunk's: one per failed input)
        self.cancelled = set()  # positions fail_fast cancelled
        self.survivors = {}  # position of a failed chunk -> [(input, pickled or value)]
        self.late = {}  # input -> result, collect_all: not yielded after a failure
        self.exhausted = False
        self.failed_at = None  # collect_all: the first failed position reached
        self.fill()

    def fill(self):
        if self.errors and self.policy == "fail_fast":
            return  # the map stops: nothing more is submitted
        payloads = []
        limit = self.window - (self.submitted - self.next_out)
        if not self.chunked:
            for item in itertools.islice(self.items, max(0, limit)):
                payloads.append(_encode_call(self.fn, self.prefix, item, None))
            self.inputs += len(payloads)
            if len(payloads) < limit:
                self.exhausted = True
        else:
            position = self.submitted
            while len(payloads) < limit:
                remaining = None if self.total is None else self.total - self.inputs
                size = self.sizer.size(position + len(payloads) - self.next_out, remaining)
                in_flight = self.inputs - self.consumed
                if size == 0 or (in_flight and in_flight + size > max(
                        self.window, 4 * self.workers * size)):
                    break
                chunk = list(itertools.islice(self.items, size))
                if chunk:
                    payloads.append(self.encode_chunk(chunk))
                    self.chunks[position + len(payloads) - 1] = (self.inputs, len(chunk))
                    self.inputs += len(chunk)
                if len(chunk) < size:
                    self.exhausted = True
                    break
        if payloads:
            with self.op.lock:
                first = self.op.add(self, len(payloads))
            self.op.core.submit(self.closure, payloads, first)
            self.submitted += len(payloads)
        if self.exhausted:
            self.op.seal()

    def encode_chunk(self, chunk):
        try:
            return _encode_call(self.fn, self.prefix, (chunk,), None)
        except TypeError:  # names the input that cannot be pickled
            star = self.prefix[0] & _task.FLAG_CHUNK_STAR
            for item in chunk:
                _encode_call(self.fn, self.prefix, item if star else (item,), None)
            raise

    def _parc_complete(self, position, kind, data):
        # Two threads may hand outcomes over at once (the engine, and a waiter driving
        # the scheduler): under the lock no count is lost, and an outcome is stored
        # before the count that the consumer's wait watches moves.
        with self.op.lock:
            if self.bar is not None:
                self.bar.update(self.chunks[position][1] if self.chunked else 1)
            if kind == _RESULT:
                self.ready[position] = data
            elif kind == _ERROR:
                if self.chunked:
                    self._chunk_failed(position, data)
                else:
                    self.errors[position] = [_errors.rebuild(data, position)]
            else:  # cancelled: only after a fail_fast failure, raised when reached
                self.cancelled.add(position)
            self.delivered += 1

    def _chunk_failed(self, position, error):
        first, count = self.chunks[position]
        chunk = _errors.rebuild_chunk(error, first)
        if chunk is None:  # failed as a whole (a timeout): named by its first input
            self.errors[position] = [_errors.rebuild(error, first)]
            return
        members, kept = chunk
        self.errors[position] = [exc for _, exc in members]
        if kept is not None:  # the chunk's other inputs that ran, by input
            failed = {offset for offset, _ in members}
            ran = [first + o for o in range(count) if o not in failed]
            self.survivors[position] = (ran, kept, first + min(failed))

    def __iter__(self):
        try:
            while True:
                # Read before looking at what arrived: an outcome delivered after the
                # checks below (by the engine, on another thread) then ends the wait.
                seen = self.delivered
                # As concurrent.futures: the results before the first failed input are
                # yielded, then the failure is raised (fail_fast has already cancelled
                # the tasks that had not started).
                if self.errors and self.policy == "fail_fast" and (
                        self.next_out in self.cancelled
                        or (self.exhausted and self.next_out >= self.submitted)):
                    self.fail()
                if self.next_out in self.errors:
                    self.failed_at = self.next_out
                    survivors = self.survivors.pop(self.next_out, None)
                    if survivors is not None:  # yields the chunk's inputs before the failure
                        ran, kept, failed_input = survivors
                        values = pickle.loads(kept)
                        before = [v for i, v in zip(ran, values) if i < failed_input]
                        self.late.update((i, v) for i, v in zip(ran, values)
                                         if i > failed_input)
                        values = kept = survivors = None
                        before.reverse()
                        while before:
                            yield before.pop()
                    if self.policy == "collect_all":
                        self.drain()
                    self.fail()
                if self.next_out in self.ready:
                    data = self.ready.pop(self.next_out)
                    self.next_out += 1
                    if self.chunked:
                        first, count = self.chunks.pop(self.next_out - 1)
                        self.consumed = first + count
                        seconds, values = self.decode(memoryview(data))
                        data = None
                        self.sizer.measured(seconds, len(values))
                        if not self.exhausted:
                            self.fill()
                        values.reverse()
                        while values:  # holds no value it has yielded (bpo-14406)
                            yield values.pop()
                    else:
                        self.consumed += 1
                        if not self.exhausted:
                            self.fill()
                        yield self.decode(memoryview(data))
                        data = None
                    continue
                if self.exhausted and self.next_out >= self.submitted:
                    return
                if not self.exhausted and self.next_out >= self.submitted:
                    self.fill()  # nothing in flight: never wait for nothing
                self.wait(seen)
        finally:
            self.close()

    def wait(self, seen):
        """Until an outcome arrives after `seen` deliveries (or the map's timeout
        passes)."""
        remaining = -1.0
        if self.deadline is not None:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"parc: {self.name} did not finish within its timeout")
        _core.progress(lambda: self.delivered != seen, remaining)
        if self.deadline is not None and time.monotonic() >= self.deadline:
            # What arrives after the deadline is late, even when it came during this wait
            # (serially a task runs inside it), as with concurrent.futures.
            raise TimeoutError(f"parc: {self.name} did not finish within its timeout")

    def drain(self):
        """collect_all after a failure: run every remaining input; their results are
        kept for the ParallelException's `results`."""
        while not (self.exhausted and not self.op.routes):
            seen = self.delivered
            if not self.exhausted:
                self.next_out = self.submitted  # the window slides; results are kept
                self.consumed = self.inputs
                self.fill()
            if self.op.routes:
                self.wait(seen)

    def fail(self):
        errors = [e for position in sorted(self.errors) for e in self.errors[position]]
        if self.policy == "fail_fast":
            message = (f"{self.name} failed; fail_fast cancelled the tasks that had not "
                       "started")
        elif self.chunksize is not None:
            message = f"{self.name}: {len(errors)} of {self.inputs} inputs failed"
        elif self.chunked:
            message = f"{self.name}: {len(errors)} of {self.inputs} tasks failed"
        else:
            message = f"{self.name}: {len(errors)} of {self.submitted} tasks failed"
        group = _errors.parallel_exception(message, errors)
        if self.policy == "collect_all":
            group.results = self.late_results()
        self.errors.clear()
        raise group.with_traceback(errors[0].__traceback__)

    def late_results(self):
        """collect_all: the results not yielded, by input."""
        results = self.late
        for position, data in self.ready.items():
            if self.chunked:
                first = self.chunks[position][0]
                results.update(enumerate(self.decode(memoryview(data))[1], first))
            else:
                results[position] = self.decode(memoryview(data))
        for ran, kept, _ in self.survivors.values():
            results.update(zip(ran, pickle.loads(kept)))
        self.ready.clear()
        self.survivors.clear()
        self.late = {}
        return dict(sorted(results.items()))

    def close(self):
        self.op.close()
        if self.chunked:
            self.sizer.remember()
        if self.bar is not None:
            self.bar.close()


class _BatchRun:
    """One submit_batch of a Python function, fed to the workers in chunks of inputs
    (sized by a _ChunkSizer): its futures exist at once, its inputs are pickled and sent
    as results come back (on whichever thread hands them over), so that chunks are sized
    from measured times. An input that cannot be pickled fails its own future, as with
    ProcessPoolExecutor. A future can be cancelled until its input is sent, or while it
    is alone in a chunk no worker has started."""

    def __init__(self, farm, fn, arguments):
        self.fn = fn
        self.policy = farm._policy
        self.closure, prefix = _closures.resolve(fn)
        self.prefix = bytes([prefix[0] | _chunk_flags(True, self.policy)]) + prefix[1:]
        self.arguments = arguments
        self.sizer = _ChunkSizer(farm, fn, _core.workers())
        self.op = _Operation(farm, self.policy, batching=False)
        self.lock = self.op.lock
        self.futures = [Future(self, i) for i in range(len(arguments))]
        self.next_input = 0  # inputs before it have been sent (or cancelled)
        self.chunks = {}  # position -> the input indexes of a chunk in flight
        self.sent_in = {}  # input -> the position of its chunk
        self.cancelled = set()  # inputs cancelled before they were sent
        self.stopped = False  # fail_fast saw a failure: nothing more is sent
        with self.lock:
            self.op.routes[-1] = self  # keeps the operation open while inputs wait
        self.fill()

    def fill(self):
        """Sends the next chunks, as many as the sizer wants in flight."""
        failed, chunks = [], []
        with self.lock:
            total = len(self.arguments)
            while not self.stopped and self.next_input < total:
                size = self.sizer.size(len(self.chunks) + len(chunks), total - self.next_input)
                if size == 0 or len(self.chunks) + len(chunks) >= 4 * self.sizer.workers:
                    break
                end = min(total, self.next_input + size)
                indexes = [i for i in range(self.next_input, end) if i not in self.cancelled]
                self.next_input = end
                if indexes:
                    chunks.append(indexes)
            payloads = []
            for indexes in chunks:
                payload, sent, unpicklable = self.encode(indexes)
                failed += unpicklable
                if payload is not None:
                    payloads.append((payload, sent))
            first = self.op.add(self, len(payloads)) if payloads else 0
            for position, (_, indexes) in enumerate(payloads, first):
                self.chunks[position] = indexes
                self.sent_in.update(dict.fromkeys(indexes, position))
            all_sent = self.stopped or self.next_input >= total
            if all_sent:
                self.op.routes.pop(-1, None)
        if payloads:
            self.op.core.submit(self.closure, [p for p, _ in payloads], first)
        for index, error in failed:
            _set_outcome(self.futures[index], error=error)
        if all_sent:
            self.op.seal()

    def encode(self, indexes):
        """(payload or None, the inputs it carries, [(input, TypeError)] of those that
        cannot be pickled)."""
        chunk = [self.arguments[i] for i in indexes]
        try:
            return _encode_call(self.fn, self.prefix, (chunk,), None), indexes, []
        except TypeError:
            pass
        unpicklable, kept = [], []
        for index, args in zip(indexes, chunk):
            try:
                _encode_call(self.fn, self.prefix, args, None)
                kept.append(index)
            except TypeError as error:
                unpicklable.append((index, error))
        if not kept:
            return None, [], unpicklable
        return _encode_call(self.fn, self.prefix, ([self.arguments[i] for i in kept],),
                            None), kept, unpicklable

    def _parc_complete(self, position, kind, data):
        with self.lock:
            indexes = self.chunks.pop(position)
        futures = self.futures
        if kind == _RESULT:
            seconds, values = _codec.decode(memoryview(data))
            self.sizer.measured(seconds, len(values))
            for index, value in zip(indexes, values):
                _set_outcome(futures[index], value)
        elif kind == _ERROR:
            chunk = _errors.rebuild_chunk(data, indexes)
            if chunk is None:  # failed as a whole (the worker died, ...)
                for index in indexes:
                    _set_outcome(futures[index], error=_errors.rebuild(data, index))
            else:
                members, kept = chunk
                failed = {offset for offset, _ in members}
                for offset, error in members:
                    _set_outcome(futures[indexes[offset]], error=error)
                ran = [index for offset, index in enumerate(indexes) if offset not in failed]
                for index, value in zip(ran, pickle.loads(kept) if kept else ()):
                    _set_outcome(futures[index], value)
                for index in indexes:  # fail_fast: the chunk's inputs after its failure
                    if not futures[index].done():
                        _cancelled(futures[index])
            if self.policy == "fail_fast":
                self.stop()
        else:  # cancelled: after a fail_fast failure, or by shutdown(cancel_futures=True)
            for index in indexes:
                _cancelled(futures[index])
        self.fill()

    def stop(self):
        """fail_fast: the inputs not sent yet are cancelled (the operation cancels those
        sent and not started)."""
        with self.lock:
            self.stopped = True
            unsent = range(self.next_input, len(self.arguments))
            self.next_input = len(self.arguments)
        for index in unsent:
            _cancelled(self.futures[index])

    def cancel_pending(self):
        """shutdown(cancel_futures=True): every future no worker has started."""
        self.stop()
        with self.lock:
            positions = list(self.chunks)
        for position in positions:
            if self.op._cancel(position):
                with self.lock:
                    indexes = self.chunks.pop(position, ())
                for index in indexes:
                    _cancelled(self.futures[index])

    # -- what parc.Future asks of the operation that completes it ----------------------

    def _poll(self):
        pass

    def _wait_for(self, condition, timeout):
        self.op._wait_for(condition, timeout)

    def _cancel(self, index):
        with self.lock:
            if index >= self.next_input:
                self.cancelled.add(index)
                return True
            position = self.sent_in.get(index)
            if position is None or self.chunks.get(position) != [index]:
                return False  # sent with other inputs, or done
        if not self.op._cancel(position):
            return False
        with self.lock:
            self.chunks.pop(position, None)
        self.fill()  # nothing else may be in flight to trigger it
        return True


def _cancelled(future):
    """Cancels a future whose task will not run, and says so to its waiters (stdlib
    executors do that when a worker would have taken it: concurrent.futures.wait and
    as_completed see a cancelled future only then)."""
    if not concurrent.futures.Future.cancel(future):
        return False
    future.set_running_or_notify_cancel()
    return True


def _set_outcome(future, value=None, error=None):
    try:
        if error is None:
            future.set_result(value)
        else:
            future.set_exception(error)
    except concurrent.futures.InvalidStateError:
        pass  # cancelled by the user meanwhile


class TaskFarm(concurrent.futures.Executor):
    """Runs tasks on the worker ranks with dynamic load balancing.

    policy="fail_fast" (default): a failure in a map or a submit_batch cancels that
    operation's tasks that have not started and raises; "collect_all" runs all of them
    and raises one ParallelException at the end. Tasks of separate submit() calls are
    independent, as in the stdlib. retries=N re-runs a failed task up to N times (only
    failures matching retry_on, a tuple of exception types, when given); timeout=seconds
    fails a task that runs longer.
    """

    def __init__(self, policy="fail_fast", retries=0, retry_on=(), timeout=None):
        self._retry_filter = failure_options("parc.TaskFarm", policy, retries, retry_on,
                                             timeout)
        _runtime.check_manager("parc.TaskFarm")
        self._policy = policy
        self._retries = retries
        self._timeout = float(timeout or 0)
        self._lock = threading.RLock()
        self._submits = None  # the _Operation of submit(), made at the first one
        self._operations = weakref.WeakSet()  # every operation with futures
        self._input_seconds = weakref.WeakKeyDictionary()  # fn -> seconds, measured by map
        self._shut_down = False

    # -- the Executor API -------------------------------------------------------------

    def submit(self, fn, /, *args, **kwargs):
        """Schedules fn(*args, **kwargs) on a worker; returns a parc.Future."""
        closure, prefix = _closures.resolve(fn)
        payload = _encode_call(fn, prefix, args, kwargs)
        with self._lock:
            self._check_open()
            op = self._submits
            if op is None or op.closed:
                # Independent tasks: one failure never cancels another submit's task.
                op = self._submits = _Operation(self, "collect_all")
                self._operations.add(op)
            index = op.next_index
            op.next_index = index + 1
            op.routes[index] = future = Future(op, index, _decoder(fn))
        op.core.submit(closure, [payload], index)
        return future

    def submit_batch(self, fn, arguments):
        """Schedules fn(*args) for every args tuple of `arguments`; returns the futures.
        The farm's policy covers the batch: under fail_fast a failure cancels the
        batch's tasks that have not started. An input that cannot be pickled fails its
        own future with a TypeError that names it (as with ProcessPoolExecutor)."""
        closure, prefix = _closures.resolve(fn)
        arguments = list(arguments)
        for args in arguments:
            if not isinstance(args, tuple):
                raise TypeError(f"parc: submit_batch takes a list of argument tuples, got "
                                f"{type(args).__name__} {args!r}; write ({args!r},)")
        if not (isinstance(fn, CppClosure) or self._timeout or self._retries
                or _core.serial()):  # as map: chunks of inputs where they may be
            with self._lock:
                self._check_open()
                run = _BatchRun(self, fn, arguments)
                self._operations.add(run.op)
            return run.futures
        payloads, unpicklable = [], {}
        for position, args in enumerate(arguments):
            try:
                payloads.append(_encode_call(fn, prefix, args, None))
            except TypeError as error:
                unpicklable[position] = error
        with self._lock:
            self._check_open()
            op = _Operation(self, self._policy)
            self._operations.add(op)
            decode = _decoder(fn)
            futures = []
            for position in range(len(arguments)):
                if position in unpicklable:
                    future = Future(op, -1, decode)
                    future.set_exception(unpicklable[position])
                else:
                    future = Future(op, op.next_index, decode, position)
                    op.add(future, 1)
                futures.append(future)
        if payloads:
            op.core.submit(closure, payloads, 0)
        op.seal()
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
        """As the stdlib's: later submits raise RuntimeError; cancel_futures=True cancels
        the futures no worker has yet; wait=True waits for the others. With wait=False
        the submitted tasks still run (parc's progress engine runs them)."""
        with self._lock:
            self._shut_down = True
            operations = [op for op in self._operations if not op.closed]
        if cancel_futures:
            for op in operations:
                with op.lock:
                    routes = set(op.routes.values())
                for route in routes:
                    if isinstance(route, Future):
                        route.cancel()
                    elif isinstance(route, _BatchRun):
                        route.cancel_pending()
        for op in operations:
            if op is self._submits:
                op.seal()
        if wait:
            _core.progress(lambda: all(not op.routes for op in operations), -1.0)

    def __exit__(self, exc_type, exc, tb):
        self.shutdown(wait=True)
        return False

    # -- the manager's side -----------------------------------------------------------

    def _seconds_per_input(self, fn):
        try:
            return self._input_seconds.get(fn)
        except TypeError:  # not weakly referable: measured anew by each map
            return None

    def _remember_seconds_per_input(self, fn, seconds):
        try:
            self._input_seconds[fn] = seconds
        except TypeError:
            pass

    def _check_open(self):
        if self._shut_down or _runtime.stopped():
            raise RuntimeError("cannot schedule new futures after shutdown")


def _progress_any(pending, deadline):
    """Waits a little for some future of `pending` to finish. Proxy replies complete when
    polled (done()); parc's own futures complete on their own."""
    remaining = 0.05 if deadline is None else max(0.0, min(0.05, deadline - time.monotonic()))
    if any(not isinstance(getattr(f, "_parc_driver", None), _Operation) for f in pending):
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
