"""What the managers on rank 0 (TaskFarm, Pipeline) share: their failure options, the
sizing of chunks of inputs, and raising one operation's failures as a group."""

from . import _errors

_POLICIES = ("fail_fast", "collect_all")


def name_of(fn):
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


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


def raise_group(message, errors):
    group = _errors.parallel_exception(message, errors)
    # Serial mode: the first member carries the closure's live traceback; raising the
    # group on top of it lets pdb's post-mortem stop at the line that raised.
    raise group.with_traceback(errors[0].__traceback__)


class ChunkSizer:
    """How many inputs the next chunk of a map or a submit_batch carries: single inputs
    (two per worker in flight) until a chunk's time per input is known, then about
    chunk_seconds of work, at most max_chunk inputs; with a known remainder, a share for
    every worker at the tail, though not below tail_seconds of work. The time per input
    is the worker's (calls only); it starts from `per_input` (None: unknown), and
    remember() hands the measured one to `keep` (a farm keeps it per function, a
    pipeline for its next run)."""

    chunk_seconds = 2e-3
    tail_seconds = 50e-6  # the least work a chunk carries at the tail
    max_chunk = 8192  # inputs; past this the per-chunk cost is already < 1%

    def __init__(self, workers, fixed, per_input, keep):
        self.workers = workers
        self.fixed = fixed  # chunksize=k
        self.per_input = per_input
        self.keep = keep
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
            self.keep(self.per_input)
