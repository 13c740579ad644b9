"""parc.Pipeline: items stream through stages; parc.Stage gives a stage several workers.

Each stage is a task farm pinned to its own workers. Items pass through the manager
(rank 0) between stages as the bytes the previous stage returned: the C++ engine hands a
stage's pickled result on as the next stage's argument (_codec.FLAG_SINGLE) and never
unpickles it. Only the last stage's results are unpickled, in the consumer's thread.
"""

import itertools
import pickle
import weakref

from . import _closures, _codec, _core, _errors, _runtime
from ._cpp import CppClosure
from ._errors import UsageError
from ._manager import ChunkSizer, failure_options, name_of, raise_group


class Stage:
    """A pipeline stage: `fn` called on each item by `workers` worker ranks (a task farm
    inside the pipeline). `name` labels it in failure notes (default: fn's name)."""

    def __init__(self, fn, workers=1, name=None):
        if isinstance(fn, Stage):
            raise TypeError("parc.Stage: fn is already a parc.Stage")
        if not callable(fn):
            raise TypeError(f"parc.Stage: {fn!r} is not callable; a stage is a function of "
                            "one item")
        if isinstance(fn, CppClosure):
            raise UsageError(
                f"parc.Stage: {fn!r} is a C++ closure; pipeline stages pass pickled Python "
                "values to each other, so C++ closures cannot be stages yet. Use them in a "
                "parc.TaskFarm.")
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise ValueError(f"parc.Stage: workers must be an int >= 1, got {workers!r}")
        self.fn = fn
        self.workers = workers
        self.name = name if name is not None else name_of(fn)

    def __repr__(self):
        return f"parc.Stage({self.name}, workers={self.workers})"


def _stage_of(position, stage):
    if isinstance(stage, Stage):
        return stage
    if not callable(stage):
        raise TypeError(f"parc.Pipeline: stage {position} ({stage!r}) is not callable; give "
                        "functions or parc.Stage(fn, workers=N)")
    try:
        return Stage(stage)
    except (TypeError, ValueError, UsageError) as error:
        raise type(error)(f"parc.Pipeline: stage {position}: {error}") from None


class Pipeline:
    """Stages that stream items: Pipeline([load, Stage(transform, workers=3), save]).

    run(iterable) yields the last stage's results, in input order (ordered=False: as they
    come), reading the input only while fewer than `window` items are in flight.
    policy="fail_fast" (default) stops at the first failure and raises; "collect_all"
    drops failed items, goes on, and raises one ParallelException at the end.
    retries, retry_on and timeout apply to each stage's tasks, as in parc.TaskFarm.
    """

    def __init__(self, stages, policy="fail_fast", retries=0, retry_on=(), timeout=None):
        if isinstance(stages, (Stage, str, bytes)) or callable(stages):
            raise TypeError("parc.Pipeline takes a list of stages: Pipeline([f, g, h])")
        try:
            stages = list(stages)
        except TypeError:
            raise TypeError(f"parc.Pipeline takes a list of stages, got "
                            f"{type(stages).__name__}") from None
        if not stages:
            raise ValueError("parc.Pipeline needs at least one stage")
        self._stages = [_stage_of(position, stage)
                        for position, stage in enumerate(stages, 1)]
        retry_filter = failure_options("parc.Pipeline", policy, retries, retry_on, timeout)
        _runtime.check_manager("parc.Pipeline")
        self._policy = policy
        self._retries = retries
        self._retry_filter = retry_filter
        self._timeout = float(timeout or 0)
        self._specs = []  # (closure id, prefix, workers, name) per stage
        for stage in self._stages:
            closure, prefix = _closures.resolve(stage.fn)
            # The same prefix as a farm task's, flagged: the argument is the one item.
            prefix = bytes([prefix[0] | _codec.FLAG_SINGLE]) + prefix[1:]
            self._specs.append((closure, prefix, stage.workers, stage.name))
        self._runs = weakref.WeakSet()  # runs not finished, closed by close()
        self._input_seconds = None  # the longest stage's seconds per item, measured
        self._closed = False

    def _remember_seconds(self, seconds):  # for the next run's ChunkSizer
        self._input_seconds = seconds

    @property
    def stages(self):
        return list(self._stages)

    def ranks(self):
        """The worker ranks of each stage (stages take ranks in turn, sharing them only
        when they ask for more workers than there are)."""
        return [list(r) for r in _core.pipeline_ranks([s.workers for s in self._stages])]

    def run(self, iterable, ordered=True, window=None, chunksize=None):
        """A generator of the last stage's results, one per item of `iterable` (which may
        be unbounded): in input order, or as they come when ordered=False. At most
        `window` items (default: 64 per worker) are in flight, counting results not yet
        consumed, and the input is read only as they leave. Items travel in chunks sized
        from the stages' measured times, as map's; chunksize=k sends k items per task."""
        if self._closed:
            raise RuntimeError("parc.Pipeline: run() after close()")
        if window is not None and (not isinstance(window, int) or isinstance(window, bool)
                                   or window < 1):
            raise ValueError(f"parc.Pipeline: window must be an int >= 1 or None, got "
                             f"{window!r}")
        if chunksize is not None and (not isinstance(chunksize, int)
                                      or isinstance(chunksize, bool) or chunksize < 1):
            raise ValueError(f"parc.Pipeline: chunksize must be a positive int or None, got "
                             f"{chunksize!r}")
        items = iter(iterable)
        run = _Run(self, items, bool(ordered), window or 0, chunksize)
        self._runs.add(run)
        return run.stream()

    def close(self):
        """Closes the runs not finished: their queued items are dropped."""
        self._closed = True
        for run in list(self._runs):
            run.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False


_FAILED = object()  # an item that failed, in the ordering of the outputs


class _Run:
    """One pipeline.run: feeds the engine from the input, yields what comes out.

    Items travel alone, or in chunks (a run of consecutive items that goes through every
    stage as one task per stage, as map's chunks: _worker.run_chunk on the worker, one
    pickle per chunk). Chunks are sized from the longest stage's measured time per item
    (_manager.ChunkSizer) or by chunksize, and never past the window. Chunked, the engine
    keeps no order (a chunk's survivors may come back later, see _failed) and the outputs
    are put in input order here; alone, the engine orders them."""

    def __init__(self, pipeline, items, ordered, window, chunksize):
        self.pipeline = pipeline
        self.items = items
        self.ordered = ordered
        self.window = window
        # As map: each item alone where a chunk would change what the user sees (retries
        # and timeouts per task, serial runs whose tasks must not depend on timing).
        self.chunked = chunksize is not None or not (
            pipeline._retries or pipeline._timeout or _core.serial())
        self.sizer = None
        if self.chunked:
            self.sizer = ChunkSizer(sum(s.workers for s in pipeline._stages), chunksize,
                                    pipeline._input_seconds, pipeline._remember_seconds)
        self.engine = None
        self.closed = False
        self.units = {}  # engine index -> the item indexes it carries (chunked)
        self.sent = 0  # engine indexes used: chunks fed, survivors fed again

    def stream(self):
        pipeline = self.pipeline
        names = [spec[3] for spec in pipeline._specs]
        errors = {}  # item index -> exception
        fail_fast = pipeline._policy == "fail_fast"
        chunked = self.chunked
        ordered = self.ordered
        ready = {}  # ordered: item index -> its output (or _FAILED) until its turn
        next_out = 0  # ordered: the item to yield next
        retired = 0  # items yielded or failed
        exhausted = False
        fed = 0
        try:
            if self.closed:
                return
            specs = pipeline._specs
            if chunked:  # the same prefixes, flagged: the argument is a chunk of items
                flags = _codec.FLAG_CHUNK | (_codec.FLAG_CHUNK_STOP if fail_fast else 0)
                specs = [(closure, bytes([prefix[0] | flags]) + prefix[1:], workers, name)
                         for closure, prefix, workers, name in specs]
            self.engine = engine = _core.Pipeline(
                specs, pipeline._policy, pipeline._retries, pipeline._retry_filter,
                pipeline._timeout, self.window, ordered and not chunked)
            window = engine.window()  # items in flight, at most
            while True:
                while not exhausted:
                    room = window - (fed - retired)
                    if not chunked:
                        size = room
                    else:
                        size = min(self.sizer.size(len(self.units), window), window)
                        if size == 0 or size > room:
                            break
                    if size <= 0:
                        break
                    chunk = list(itertools.islice(self.items, size))
                    if len(chunk) < size:
                        exhausted = True
                    if not chunk:
                        break
                    if chunked:
                        payloads = [self._encode_chunk(chunk, fed)]
                        self.units[self.sent] = range(fed, fed + len(chunk))
                        self.sent += 1
                    else:
                        payloads = [self._encode(item, fed + i) for i, item in enumerate(chunk)]
                    engine.feed(payloads)
                    fed += len(chunk)
                    if not chunked:
                        break
                outputs, failures, in_flight = engine.wait(-1.0, False)
                for unit, stage, error in failures:
                    failed, survivors = self._failed(unit, stage, error, len(names))
                    for index, exc in failed:
                        exc.add_note(f"pipeline stage {stage + 1} of {len(names)} "
                                     f"({names[stage]}), item #{index}")
                        exc.parc_stage = stage
                        errors[index] = exc
                        retired += 1
                        if ordered:
                            ready[index] = _FAILED
                    if survivors:  # collect_all: the others of a chunk, out of the last stage
                        outputs.append(survivors)
                if errors and fail_fast:
                    first = next(iter(errors))  # the first failure known
                    stage = errors[first].parc_stage
                    self.close()
                    raise_group(f"pipeline stage {stage + 1} of {len(names)} "
                                 f"({names[stage]}) failed on item #{first}; fail_fast "
                                 "stopped the pipeline",
                                 [errors[i] for i in sorted(errors)])
                for unit, data in outputs:
                    if chunked:
                        indexes, values = self._chunk_out(unit, data)
                    else:
                        indexes, values = (unit,), (data,)
                    if ordered:
                        ready.update(zip(indexes, values))
                        continue
                    for index, value in zip(indexes, values):
                        retired += 1
                        yield self._decode(index, value) if not chunked else value
                        if self.closed:  # Pipeline.close() while the consumer held a result
                            return
                while next_out in ready:
                    value = ready.pop(next_out)
                    next_out += 1
                    if value is not _FAILED:
                        retired += 1
                        yield self._decode(next_out - 1, value) if not chunked else value
                        if self.closed:
                            return
                if exhausted and (not self.units if chunked else in_flight == 0):
                    break  # (chunked, the engine's count misses survivors fed again)
        finally:
            self.close()
        if errors:
            raise_group(f"pipeline: {len(errors)} of {fed} items failed",
                         [errors[i] for i in sorted(errors)])

    def _failed(self, unit, stage, error, stages):
        """The failures of a failed task, [(item index, exception)], and survivors: None,
        or ([item index], results) of the chunk's other items when it failed in the last
        stage.
        Collect_all: the others, when it failed in an earlier stage, are fed again and
        passed through the stages up to the failed one (each stage hands them on
        untouched), and come out later, as a unit of their own."""
        if not self.chunked:
            return [(unit, _errors.rebuild(error, unit))], None
        indexes = self.units.pop(unit)
        chunk = _errors.rebuild_chunk(error, list(indexes))
        if chunk is None:  # failed as a whole (a worker died, ...)
            return [(index, _errors.rebuild(error, index)) for index in indexes], None
        members, kept = chunk
        failed = {offset for offset, _ in members}
        failures = [(indexes[offset], exc) for offset, exc in members]
        if self.pipeline._policy == "fail_fast":
            return failures, None
        others = [index for offset, index in enumerate(indexes) if offset not in failed]
        if not others:
            return failures, None
        if kept is None:  # the others' results could not be pickled together: lost
            for index in others:
                exc = TypeError(f"parc: the result of item #{index} in stage {stage + 1} "
                                "could not be sent on: a result of its chunk cannot be "
                                "pickled")
                exc.parc_index = index
                failures.append((index, exc))
            return failures, None
        if stage + 1 == stages:
            return failures, (others, pickle.loads(kept))
        self.units[self.sent] = others
        self.sent += 1
        self.engine.feed([_codec.encode((stage + 1, 0.0, pickle.loads(kept)))])
        return failures, None

    def _chunk_out(self, unit, data):
        """The item indexes and values of a chunk out of the last stage."""
        if isinstance(unit, list):  # survivors of a chunk failed in the last stage
            return unit, data
        indexes = self.units.pop(unit)
        try:
            _, seconds, values = _codec.decode(memoryview(data))
        except Exception as error:
            error.add_note(f"parc: the results of items #{indexes[0]} to #{indexes[-1]} of "
                           "the pipeline could not be unpickled on the manager")
            raise
        self.sizer.measured(seconds, len(values))
        return indexes, values

    def _encode_chunk(self, chunk, first):
        try:
            return _codec.encode((0, 0.0, chunk))
        except Exception:  # names the item that cannot be pickled
            for offset, item in enumerate(chunk):
                self._encode(item, first + offset)
            raise

    def _encode(self, item, index):
        try:
            return _codec.encode(item)
        except Exception as error:
            raise TypeError(f"parc.Pipeline: item #{index} of the input "
                            f"({type(item).__name__}) cannot be pickled, so it cannot be "
                            f"sent to a worker: {error}") from error

    def _decode(self, index, data):
        try:
            return _codec.decode(memoryview(data))
        except Exception as error:
            error.add_note(f"parc: the result of item #{index} of the pipeline could not be "
                           "unpickled on the manager")
            raise

    def close(self):
        if self.closed:
            return
        self.closed = True
        if self.sizer is not None:
            self.sizer.remember()
        if self.engine is not None:
            self.engine.close()
        self.pipeline._runs.discard(self)
