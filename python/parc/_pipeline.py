"""parc.Pipeline: items stream through stages; parc.Stage gives a stage several workers.

Each stage is a task farm pinned to its own workers. Items pass through the manager
(rank 0) between stages as the bytes the previous stage returned: the C++ engine hands a
stage's pickled result on as the next stage's argument (_task.FLAG_SINGLE) and never
unpickles it. Only the last stage's results are unpickled, in the consumer's thread.
"""

import itertools
import weakref

from . import _closures, _codec, _core, _errors, _runtime, _task
from ._cpp import CppClosure
from ._errors import UsageError
from ._farm import _name_of, _raise_group, failure_options


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
        self.name = name if name is not None else _name_of(fn)

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
            prefix = bytes([prefix[0] | _task.FLAG_SINGLE]) + prefix[1:]
            self._specs.append((closure, prefix, stage.workers, stage.name))
        self._runs = weakref.WeakSet()  # runs not finished, closed by close()
        self._closed = False

    @property
    def stages(self):
        return list(self._stages)

    def ranks(self):
        """The worker ranks of each stage (stages take ranks in turn, sharing them only
        when they ask for more workers than there are)."""
        return [list(r) for r in _core.pipeline_ranks([s.workers for s in self._stages])]

    def run(self, iterable, ordered=True, window=None):
        """A generator of the last stage's results, one per item of `iterable` (which may
        be unbounded): in input order, or as they come when ordered=False. At most
        `window` items (default: 64 per worker) are in flight, counting results not yet
        consumed, and the input is read only as they leave."""
        if self._closed:
            raise RuntimeError("parc.Pipeline: run() after close()")
        if window is not None and (not isinstance(window, int) or isinstance(window, bool)
                                   or window < 1):
            raise ValueError(f"parc.Pipeline: window must be an int >= 1 or None, got "
                             f"{window!r}")
        items = iter(iterable)
        run = _Run(self, items, bool(ordered), window or 0)
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


class _Run:
    """One pipeline.run: feeds the engine from the input, yields what comes out."""

    def __init__(self, pipeline, items, ordered, window):
        self.pipeline = pipeline
        self.items = items
        self.ordered = ordered
        self.window = window
        self.engine = None
        self.closed = False

    def stream(self):
        pipeline = self.pipeline
        names = [spec[3] for spec in pipeline._specs]
        errors = {}  # item index -> exception
        fail_fast = pipeline._policy == "fail_fast"
        exhausted = False
        fed = 0
        try:
            if self.closed:
                return
            self.engine = engine = _core.Pipeline(
                pipeline._specs, pipeline._policy, pipeline._retries,
                pipeline._retry_filter, pipeline._timeout, self.window, self.ordered)
            while True:
                if not exhausted:
                    room = engine.room()
                    if room > 0:
                        payloads = []
                        for item in itertools.islice(self.items, room):
                            payloads.append(self._encode(item, fed + len(payloads)))
                        if len(payloads) < room:
                            exhausted = True
                        if payloads:
                            engine.feed(payloads)
                            fed += len(payloads)
                outputs, failures, in_flight = engine.wait(-1.0, not exhausted)
                for index, stage, error in failures:
                    exc = _errors.rebuild(error, index)
                    exc.add_note(f"pipeline stage {stage + 1} of {len(names)} "
                                 f"({names[stage]}), item #{index}")
                    exc.parc_stage = stage
                    errors[index] = exc
                if errors and fail_fast:
                    first = next(iter(errors))  # the first failure known
                    stage = errors[first].parc_stage
                    self.close()
                    _raise_group(f"pipeline stage {stage + 1} of {len(names)} "
                                 f"({names[stage]}) failed on item #{first}; fail_fast "
                                 "stopped the pipeline",
                                 [errors[i] for i in sorted(errors)])
                for index, data in outputs:
                    yield self._decode(index, data)
                    if self.closed:  # Pipeline.close() while the consumer held a result
                        return
                if exhausted and in_flight == 0:
                    break
        finally:
            self.close()
        if errors:
            _raise_group(f"pipeline: {len(errors)} of {fed} items failed",
                         [errors[i] for i in sorted(errors)])

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
        if self.engine is not None:
            self.engine.close()
        self.pipeline._runs.discard(self)
