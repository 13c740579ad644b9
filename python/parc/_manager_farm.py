"""parc.TaskFarm, a concurrent.futures.Executor over the workers (rank 0).

The manager makes progress in the thread that waits (result(), map's iteration,
as_completed, wait, done()), with the GIL released while it waits for MPI; parc's
progress engine completes the futures (_futures) meanwhile.
"""

import concurrent.futures
import functools
import itertools
import pickle
import threading
import time
import weakref

from . import _closures, _codec, _core, _errors, _manager_progress, _runtime
from ._cpp import CppClosure
from ._futures import (CANCELLED, ERROR, RAISED, RESULT, Future, FutureNotPicklable,
                       cancel_unstarted, set_outcome)
from ._manager import ChunkSizer, failure_options, name_of


def _decoder(fn):
    """How the results of fn arrive: C++ closures in their own layout, else pickled."""
    return fn.decode if isinstance(fn, CppClosure) else _codec.decode


def _encode_call(fn, prefix, args, kwargs):
    """The payload parts of one task; an unpicklable argument is named in a TypeError."""
    if isinstance(fn, CppClosure):
        return fn.encode(args, kwargs)
    try:
        if kwargs:
            return [bytes([prefix[0] | _codec.FLAG_KWARGS]), prefix[1:],
                    *_codec.encode((args, kwargs))]
        return [prefix, *_codec.encode(args)]
    except Exception as error:
        named = list(enumerate(args)) + list((kwargs or {}).items())
        for position, value in named:
            try:
                pickle.dumps(value, protocol=5)
            except FutureNotPicklable:
                raise TypeError(
                    f"parc: {_errors.argument_name(position)} of {name_of(fn)} "
                    f"({type(value).__name__}) holds a parc.Future, which cannot travel "
                    "inside another object. Pass each future as an argument of its own "
                    "(the task then waits for it and gets its value), or pass its "
                    ".result().") from error
            except Exception as problem:
                raise TypeError(
                    f"parc: {_errors.argument_name(position)} of {name_of(fn)} "
                    f"({type(value).__name__}) cannot be pickled, so it cannot be sent to a "
                    f"worker: {problem}. Pass picklable values (or what the worker needs to "
                    "rebuild them).") from error
        raise TypeError(f"parc: the arguments of {name_of(fn)} cannot be pickled: {error}") \
            from error


def _dependencies(fn, args, kwargs):
    """The futures among a call's arguments, as [(position or keyword, future)], or None.
    Only a farm's futures can be: they complete on their own, without being polled."""
    found = None
    if Future in map(type, args):
        found = [(position, value) for position, value in enumerate(args)
                 if type(value) is Future]
    if kwargs and Future in map(type, kwargs.values()):
        found = (found or []) + [(name, value) for name, value in kwargs.items()
                                 if type(value) is Future]
    for key, future in found or ():
        if not isinstance(future._parc_driver, (_Operation, _BatchRun)):
            raise TypeError(f"parc: {_errors.argument_name(key)} of {name_of(fn)} is the future of a proxy call; "
                            "only a farm's futures can be arguments of a task: pass its "
                            ".result()")
    return found


def _has_dependencies(args):
    return Future in map(type, args)


class _Waiting:
    """A task whose arguments include futures not done yet. It is submitted once they
    all are, with their values in their place; a failed one fails it with a
    DependencyError that names it, a cancelled one cancels it. Its outcome reaches the
    sink of its index, as any other task's (the hooks run on the thread that completes
    the last future, with the GIL)."""

    __slots__ = ("op", "index", "closure", "encode", "call", "args", "kwargs",
                 "dependencies", "pending", "values_here")

    def __init__(self, closure, encode, call, args, kwargs, dependencies, values_here=False):
        self.op = None
        self.index = None
        self.closure = closure
        self.encode = encode  # (args, kwargs) -> the task's payload
        self.call = call
        self.args = args
        self.kwargs = kwargs
        self.dependencies = dependencies
        self.pending = len(dependencies)
        # A C++ closure's arguments are encoded here, so a kept result is fetched first.
        self.values_here = values_here

    def listen(self):
        """Hooks the dependencies, once op.waiting holds this task (a dependency done
        already submits or fails it at once)."""
        for _, future in self.dependencies:
            if self.op.waiting.get(self.index) is not self:
                return  # failed, cancelled (by fail_fast) or dropped meanwhile
            future._parc_on_done(self.dependency_done)

    def dependency_done(self, future):
        op = self.op
        with op.lock:
            if op.waiting.get(self.index) is not self:
                return  # cancelled, failed or dropped meanwhile
            if not future.cancelled() and future._exception is None:
                self.pending -= 1
                if self.pending:
                    return
            del op.waiting[self.index]
        key = next(k for k, f in self.dependencies if f is future)
        if future.cancelled():  # a map, which cannot yield a cancelled input, raises this
            op.deliver([(self.index, CANCELLED, _errors.CancelledError(
                f"{self.call} did not run: its {_errors.argument_name(key)} is a future "
                "that was cancelled"))])
        elif future._exception is not None:
            error = _errors.failed_dependency(self.call, key, future._exception)
            op.deliver([(self.index, RAISED, error)])
        else:
            self.submit()

    def submit(self):
        args, kwargs = list(self.args), dict(self.kwargs or {})
        try:
            for key, future in self.dependencies:
                value = future.result() if self.values_here else future._result
                if isinstance(key, int):
                    args[key] = value
                else:
                    kwargs[key] = value
            payload = self.encode(tuple(args), kwargs)
        except Exception as error:  # a value that did not pickle again or cannot be fetched
            self.op.deliver([(self.index, RAISED, error)])
            return
        self.op.core.submit(self.closure, [payload], self.index)


def _submit_entries(op, closure, entries, first):
    """Submits entries[i] as the task of index first + i: a payload at once, a _Waiting
    once its dependencies are done."""
    start = 0
    waiting = []
    for offset, entry in enumerate(entries):
        if type(entry) is _Waiting:
            if start < offset:
                op.core.submit(closure, entries[start:offset], first + start)
            start = offset + 1
            entry.op, entry.index = op, first + offset
            waiting.append(entry)
    if start < len(entries):
        op.core.submit(closure, entries[start:] if start else entries, first + start)
    if waiting:
        # All of them wait before any listens: a failed dependency's fail_fast then
        # cancels every other waiting task of the batch.
        with op.lock:
            if op.closed:
                return
            op.waiting.update((entry.index, entry) for entry in waiting)
        for entry in waiting:
            entry.listen()


@functools.lru_cache(maxsize=256)
def _keeping(prefix):
    """A payload prefix with FLAG_KEEP: the worker keeps a large result."""
    return bytes((prefix[0] | _codec.FLAG_KEEP,)) + prefix[1:]


def _waiting_call(fn, closure, prefix, args, kwargs, dependencies):
    """The _Waiting of fn(*args, **kwargs). Its other arguments are pickled once now, so
    that one that cannot be is reported by submit, as without dependencies."""
    if not isinstance(fn, CppClosure):  # a C++ argument's type may refuse None
        _encode_call(fn, prefix, *_without_futures(args, kwargs))
    return _Waiting(closure, functools.partial(_encode_call, fn, prefix),
                    f"{name_of(fn)}(...)", args, kwargs, dependencies,
                    isinstance(fn, CppClosure))


def _without_futures(args, kwargs):
    args = tuple(None if type(a) is Future else a for a in args)
    if kwargs:
        kwargs = {k: None if type(v) is Future else v for k, v in kwargs.items()}
    return args, kwargs


# Operations that still have tasks to run: a farm shut down with wait=False, or whose
# futures were dropped, still runs what was submitted (as the stdlib's executors do).
_live_operations = set()


class _Operation:
    """One farm operation's tasks in the scheduler: every submit of a farm (independent,
    as in the stdlib), one submit_batch, or one map. Its failure policy covers only its
    own tasks. Outcomes reach it through deliver(), from whichever thread drives, and
    go on to the sink of their index: a Future, or the map or batch run they belong to
    (what the C++ scheduler calls a Sink is this operation's _core.Farm)."""

    completes_on_its_own = True  # its futures need no polling (see _futures.wait)

    def __init__(self, farm, policy, batching=True, ordered=False):
        self.farm = farm
        self.lock = farm._lock
        self.core = _core.Farm(policy, farm._retries, farm._retry_filter, farm._timeout,
                               self.deliver, batching, ordered)
        self.policy = policy
        self.sinks = {}  # index -> its Future, or the _MapRun or _BatchRun
        self.waiting = {}  # index -> its _Waiting: a task waiting for its arguments
        # Deliveries whose outcomes have left `sinks` but not reached their runs yet: the
        # engine thread may deliver while the manager's thread looks at `sinks`.
        self.completing = 0
        self.next_index = 0
        self.sealed = False  # no more tasks will be added
        self.closed = False
        _live_operations.add(self)

    def add(self, sink, count):
        """Reserves `count` indexes whose outcomes go to `sink`; returns the first."""
        first = self.next_index
        for index in range(first, first + count):
            self.sinks[index] = sink
        self.next_index += count
        return first

    def deliver(self, outcomes):
        with self.lock:
            taken = [(self.sinks.pop(index, None), index, kind, data)
                     for index, kind, data in outcomes]
            finished = self.sealed and not self.sinks
            self.completing += 1
            # fail_fast in a submit_batch: _core cancels the tasks it holds; those that
            # wait for their arguments, or all of them after a failure _core did not
            # see, are cancelled here.
            stop = self.policy == "fail_fast" and (self.waiting or any(
                kind == RAISED for _, _, kind, _ in taken)) and any(
                kind in (ERROR, RAISED) for _, _, kind, _ in taken)
        try:
            for sink, index, kind, data in taken:
                if sink is not None:  # None: a map that has already raised or returned
                    sink._parc_complete(index, kind, data)
        finally:
            with self.lock:
                self.completing -= 1
        if stop:
            with self.lock:
                unstarted = [s for s in self.sinks.values() if type(s) is Future]
            for future in unstarted:
                future.cancel()
        if finished:
            self.close()

    def settled(self):
        """Every outcome reserved has reached its run (not only left `sinks`)."""
        return not self.sinks and not self.completing

    def seal(self):
        with self.lock:
            self.sealed = True
            finished = not self.sinks
        if finished:
            self.close()

    def close(self):
        """Drops the tasks still queued (a map left early); the running ones finish."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            self.sinks.clear()
            self.waiting.clear()
        _live_operations.discard(self)
        self.core.close()

    # -- what parc.Future asks of the operation that completes it ----------------------

    def _poll(self):
        pass  # the progress engine completes futures on its own

    def _wait_for(self, condition, timeout):
        _core.progress(condition, -1.0 if timeout is None else max(0.0, timeout))

    def _cancel(self, index):
        with self.lock:
            if self.closed or not (self.waiting.pop(index, None) or self.core.cancel(index)):
                return False
            self.sinks.pop(index, None)
            finished = self.sealed and not self.sinks
        if finished:
            self.close()
        return True


def _chunk_flags(star, policy):
    """The payload flags of a chunk of inputs (see _worker.run_chunk)."""
    return _codec.FLAG_CHUNK | (_codec.FLAG_CHUNK_STAR if star else 0) | (
        _codec.FLAG_CHUNK_STOP if policy == "fail_fast" else 0)


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
        self.name = name_of(fn)
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
        self.total = _manager_progress.length_of(iterables)  # inputs, when known
        self.closure, self.prefix = _closures.resolve(fn)
        self.decode = _decoder(fn)
        self.star = star = len(iterables) > 1
        self.held = []  # inputs taken from `items` and put back
        if self.chunked:
            self.prefix = bytes([self.prefix[0] | _chunk_flags(star, self.policy)]) + \
                self.prefix[1:]
            self.items = zip(*iterables) if star else iter(iterables[0])
            self.sizer = farm._chunk_sizer(fn, self.workers, chunksize)
        else:
            self.items = zip(*iterables)
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.bar = _manager_progress.bar(self.total, progress, self.name)
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
                payloads.append(self.waiting(item) if Future in map(type, item) else
                                _encode_call(self.fn, self.prefix, item, None))
            self.inputs += len(payloads)
            if len(payloads) < limit:
                self.exhausted = True
        else:
            position = self.submitted
            while len(payloads) < limit:
                remaining = None if self.total is None else self.total - self.inputs
                size = self.sizer.size(position + len(payloads) - self.next_out, remaining)
                in_flight = self.inputs - self.consumed
                # Chunks of several inputs sized automatically: four per worker in flight,
                # no more. The first sizes come from the first inputs, which carry the
                # warm-up (20 to 50 us for a 0.1 us function), and a window's worth of
                # chunks that small would all go out before a better measure came back (up
                # to 2,066 chunks for 20,000 inputs at 3 ranks on 2 cores). Single inputs
                # (tasks of 2 ms or more) fill the window, so that one stuck behind a long
                # task is taken back for a worker that runs out.
                cap = 4 * self.workers * size
                if self.sizer.fixed is not None or size == 1:
                    cap = max(self.window, cap)
                if size == 0 or (in_flight and in_flight + size > cap):
                    break
                chunk = self.take(size)
                cut = self.first_with_futures(chunk)
                if cut is not None:  # an input with futures is a task of its own
                    self.put_back(chunk[cut + 1:])
                    parts = [chunk[:cut], chunk[cut]]
                else:
                    parts = [chunk]
                for part in parts:
                    if type(part) is list:
                        if not part:
                            continue
                        payloads.append(self.encode_chunk(part))
                    else:
                        payloads.append(self.waiting(part if self.star else (part,)))
                    count = len(part) if type(part) is list else 1
                    self.chunks[position + len(payloads) - 1] = (self.inputs, count)
                    self.inputs += count
                if cut is None and len(chunk) < size:
                    self.exhausted = True
                    break
        if payloads:
            with self.op.lock:
                first = self.op.add(self, len(payloads))
            self.submitted += len(payloads)
            _submit_entries(self.op, self.closure, payloads, first)
        if self.exhausted:
            self.op.seal()

    def take(self, size):
        """The next `size` inputs (fewer at the end)."""
        if not self.held:
            return list(itertools.islice(self.items, size))
        chunk = self.held[:size]
        del self.held[:size]
        if len(chunk) < size:
            chunk += itertools.islice(self.items, size - len(chunk))
        return chunk

    def put_back(self, inputs):
        self.held[:0] = inputs

    def first_with_futures(self, chunk):
        """The offset of the chunk's first input with futures among its arguments."""
        if self.star:
            for offset, item in enumerate(chunk):
                if Future in map(type, item):
                    return offset
        elif Future in map(type, chunk):
            return list(map(type, chunk)).index(Future)
        return None

    def waiting(self, args):
        """The _Waiting task of one input whose arguments include futures."""
        dependencies = _dependencies(self.fn, args, None)
        if self.chunked:
            star = self.star
            encode = lambda resolved, _: self.encode_chunk([resolved if star else resolved[0]])
        else:
            encode = functools.partial(_encode_call, self.fn, self.prefix)
        return _Waiting(self.closure, encode, f"{self.name}(...)", args, None, dependencies,
                        isinstance(self.fn, CppClosure))

    def encode_chunk(self, chunk):
        try:
            return _encode_call(self.fn, self.prefix, (chunk,), None)
        except TypeError:  # names the input that cannot be pickled
            star = self.prefix[0] & _codec.FLAG_CHUNK_STAR
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
            if kind == RESULT:
                self.ready[position] = data
            elif kind == ERROR:
                if self.chunked:
                    self._chunk_failed(position, data)
                else:
                    self.errors[position] = [_errors.rebuild(data, position)]
            elif kind == RAISED:  # a dependency failed: the input did not run
                data.parc_index = self.chunks[position][0] if self.chunked else position
                self.errors[position] = [data]
            elif data is not None:  # an input whose argument was a cancelled future
                data.parc_index = self.chunks[position][0] if self.chunked else position
                self.errors[position] = [data]
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

    def wait(self, seen, until=None):
        """Until an outcome arrives after `seen` deliveries, or `until()` holds (or the
        map's timeout passes)."""
        remaining = -1.0
        if self.deadline is not None:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"parc: {self.name} did not finish within its timeout")
        _core.progress(lambda: self.delivered != seen or (until is not None and until()),
                       remaining)
        if self.deadline is not None and time.monotonic() >= self.deadline:
            # What arrives after the deadline is late, even when it came during this wait
            # (serially a task runs inside it), as with concurrent.futures.
            raise TimeoutError(f"parc: {self.name} did not finish within its timeout")

    def drain(self):
        """collect_all after a failure: run every remaining input; their results are
        kept for the ParallelException's `results`."""
        while not (self.exhausted and self.op.settled()):
            seen = self.delivered
            if not self.exhausted:
                self.next_out = self.submitted  # the window slides; results are kept
                self.consumed = self.inputs
                self.fill()
            if not self.op.settled():
                self.wait(seen, self.op.settled)

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
    (sized by a ChunkSizer): its futures exist at once, its inputs are pickled and sent
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
        self.sizer = farm._chunk_sizer(fn, _core.workers(), None)
        self.op = _Operation(farm, self.policy, batching=False)
        self.lock = self.op.lock
        self.futures = [Future(self, i) for i in range(len(arguments))]
        self.next_input = 0  # inputs before it have been sent (or cancelled)
        self.chunks = {}  # position -> the input indexes of a chunk in flight
        self.sent_in = {}  # input -> the position of its chunk
        self.cancelled = set()  # inputs cancelled before they were sent
        self.stopped = False  # fail_fast saw a failure: nothing more is sent
        with self.lock:
            self.op.sinks[-1] = self  # keeps the operation open while inputs wait
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
                self.op.sinks.pop(-1, None)
        if payloads:
            self.op.core.submit(self.closure, [p for p, _ in payloads], first)
        for index, error in failed:
            set_outcome(self.futures[index], error=error)
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
        if kind == RESULT:
            seconds, values = _codec.decode(memoryview(data))
            self.sizer.measured(seconds, len(values))
            for index, value in zip(indexes, values):
                set_outcome(futures[index], value)
        elif kind == ERROR:
            chunk = _errors.rebuild_chunk(data, indexes)
            if chunk is None:  # failed as a whole (the worker died, ...)
                for index in indexes:
                    set_outcome(futures[index], error=_errors.rebuild(data, index))
            else:
                members, kept = chunk
                failed = {offset for offset, _ in members}
                for offset, error in members:
                    set_outcome(futures[indexes[offset]], error=error)
                ran = [index for offset, index in enumerate(indexes) if offset not in failed]
                for index, value in zip(ran, pickle.loads(kept) if kept else ()):
                    set_outcome(futures[index], value)
                for index in indexes:  # fail_fast: the chunk's inputs after its failure
                    if not futures[index].done():
                        cancel_unstarted(futures[index])
            if self.policy == "fail_fast":
                self.stop()
        else:  # cancelled: after a fail_fast failure, or by shutdown(cancel_futures=True)
            for index in indexes:
                cancel_unstarted(futures[index])
        self.fill()

    def stop(self):
        """fail_fast: the inputs not sent yet are cancelled (the operation cancels those
        sent and not started)."""
        with self.lock:
            self.stopped = True
            unsent = range(self.next_input, len(self.arguments))
            self.next_input = len(self.arguments)
        for index in unsent:
            cancel_unstarted(self.futures[index])

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
                    cancel_unstarted(self.futures[index])

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


class TaskFarm(concurrent.futures.Executor):
    """Runs tasks on the worker ranks with dynamic load balancing.

    policy="fail_fast" (default): a failure in a map or a submit_batch cancels that
    operation's tasks that have not started and raises; "collect_all" runs all of them
    and raises one ParallelException at the end. Tasks of separate submit() calls are
    independent, as in the stdlib. retries=N re-runs a failed task up to N times (only
    failures matching retry_on, a tuple of exception types, when given); timeout=seconds
    fails a task that runs longer. keep_results=True (default): a submit's result of
    32 MiB or more (PARC_KEEP_BYTES) stays on the worker that made it until needed
    (result() fetches it; a task that takes the future as an argument reads it straight
    from that worker).
    """

    def __init__(self, policy="fail_fast", retries=0, retry_on=(), timeout=None,
                 keep_results=True):
        self._retry_filter = failure_options("parc.TaskFarm", policy, retries, retry_on,
                                             timeout)
        if not isinstance(keep_results, bool):
            raise ValueError(f"parc.TaskFarm: keep_results must be True or False, got "
                             f"{keep_results!r}")
        if keep_results:
            _codec.keep_bytes()  # a bad PARC_KEEP_BYTES is refused here
        _runtime.check_manager("parc.TaskFarm")
        self._keep = keep_results
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
        if self._keep and not isinstance(fn, CppClosure):
            prefix = _keeping(prefix)
        dependencies = _dependencies(fn, args, kwargs)
        if dependencies is None:
            payload = _encode_call(fn, prefix, args, kwargs)
        else:
            payload = _waiting_call(fn, closure, prefix, args, kwargs, dependencies)
        with self._lock:
            self._check_open()
            op = self._submits
            if op is None or op.closed:
                # Independent tasks: one failure never cancels another submit's task.
                op = self._submits = _Operation(self, "collect_all")
                self._operations.add(op)
            index = op.next_index
            op.next_index = index + 1
            op.sinks[index] = future = Future(op, index, _decoder(fn))
        if dependencies is None:
            op.core.submit(closure, [payload], index)
        else:
            _submit_entries(op, closure, [payload], index)
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
                or _core.serial() or any(map(_has_dependencies, arguments))):
            # as map: chunks of inputs where they may be
            with self._lock:
                self._check_open()
                run = _BatchRun(self, fn, arguments)
                self._operations.add(run.op)
            return run.futures
        payloads, unpicklable = [], {}
        for position, args in enumerate(arguments):
            try:
                dependencies = _dependencies(fn, args, None)
                payloads.append(
                    _encode_call(fn, prefix, args, None) if dependencies is None else
                    _waiting_call(fn, closure, prefix, args, None, dependencies))
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
            _submit_entries(op, closure, payloads, 0)
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
                    sinks = set(op.sinks.values())
                for sink in sinks:
                    if isinstance(sink, Future):
                        sink.cancel()
                    elif isinstance(sink, _BatchRun):
                        sink.cancel_pending()
        for op in operations:
            if op is self._submits:
                op.seal()
        if wait:
            _core.progress(lambda: all(op.settled() for op in operations), -1.0)

    def __exit__(self, exc_type, exc, tb):
        self.shutdown(wait=True)
        return False

    # -- the manager's side -----------------------------------------------------------

    def _chunk_sizer(self, fn, workers, chunksize):
        """A map's or a batch's ChunkSizer, starting from the time per input of fn that
        this farm's earlier maps measured."""
        try:
            per_input = self._input_seconds.get(fn)
        except TypeError:  # not weakly referable: measured anew by each map
            per_input = None
        return ChunkSizer(workers, chunksize, per_input,
                          functools.partial(self._remember_seconds_per_input, fn))

    def _remember_seconds_per_input(self, fn, seconds):
        try:
            self._input_seconds[fn] = seconds
        except TypeError:
            pass

    def _check_open(self):
        if self._shut_down or _runtime.stopped():
            raise RuntimeError("cannot schedule new futures after shutdown")
