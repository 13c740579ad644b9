"""parc.Spmd: one closure on every worker of a set, with collectives among them.

    def kernel(ctx, n):
        part = compute(ctx.rank, ctx.size, n)
        return ctx.allreduce(part)

    totals = parc.Spmd().run(kernel, 1000)     # one result per region rank

A failure on one rank releases the others, even those waiting in a collective or a
receive (they raise parc.CancelledError inside the region), and run() raises one
parc.ParallelException holding the real failures only.
"""

import operator
import time

from . import _closures, _codec, _core, _errors, _proxy, _runtime, _task
from ._cpp import CppClosure
from ._errors import ParallelException

try:
    import numpy
except ImportError:  # optional: arrays then go through pickle like any object
    numpy = None

_NATIVE_OPS = ("sum", "prod", "min", "max")
_PY_OPS = {"sum": operator.add, "prod": operator.mul, "min": min, "max": max}
SUM, PROD, MIN, MAX = _NATIVE_OPS


def _value(buffer):
    return _codec.decode(memoryview(buffer))


def _native_code(obj):
    """The element type code of an array (or float) that MPI reduces itself, else None."""
    if numpy is None:
        return None
    if isinstance(obj, float):
        return "f8"
    if isinstance(obj, (numpy.ndarray, numpy.number)):
        code = f"{obj.dtype.kind}{obj.dtype.itemsize}"
        if code in ("i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f4", "f8"):
            return code
    return None


def _check_op(op):
    if isinstance(op, str):
        if op not in _NATIVE_OPS:
            raise ValueError(f"parc: unknown reduction {op!r}; use 'sum', 'prod', 'min', "
                             "'max' or a function of two values")
        return op
    if not callable(op):
        raise TypeError(f"parc: a reduction is 'sum', 'prod', 'min', 'max' or a function of "
                        f"two values, got {op!r}")
    return op


def _fold(values, op):
    function = _PY_OPS[op] if isinstance(op, str) else op
    result = values[0]
    for value in values[1:]:
        result = function(result, value)
    return result


class Context:
    """What an SPMD closure gets first: its rank in the region, the region's size, and
    collectives among the region's ranks. Objects travel pickled (numpy arrays out of
    band, not copied into the pickle); allreduce/reduce of numpy arrays and floats with
    'sum', 'prod', 'min' or 'max' run inside MPI without pickling. Valid only while the
    closure runs."""

    __slots__ = ("rank", "size", "_token")

    def __init__(self):
        self._token = _core.ctx_token()
        self.rank = _core.ctx_rank(self._token)
        self.size = _core.ctx_size(self._token)

    def __reduce__(self):
        raise TypeError("parc: an SPMD context cannot be pickled: it is valid only inside "
                        "its region, on its rank")

    def __repr__(self):
        return f"<parc SPMD context: rank {self.rank} of {self.size}>"

    def _check_rank(self, rank, what):
        if not isinstance(rank, int) or not 0 <= rank < self.size:
            raise ValueError(f"parc: {what} must be a rank of the region, 0 to "
                             f"{self.size - 1}, got {rank!r}")

    def barrier(self):
        _core.ctx_barrier(self._token)

    def bcast(self, obj=None, root=0):
        """root's obj on every rank."""
        self._check_rank(root, "root")
        data = None
        if self.rank == root:
            with _proxy.pickled_for(self.size):  # every rank loads it, the root too
                data = _codec.encode(obj)
        return _value(_core.ctx_bcast(self._token, data, root))

    def gather(self, obj, root=0):
        """Every rank's obj in rank order at root; None on the other ranks."""
        self._check_rank(root, "root")
        values = [_value(b) for b in _core.ctx_gather(self._token, _codec.encode(obj), root)]
        return values if self.rank == root else None

    def allgather(self, obj):
        with _proxy.pickled_for(self.size):
            data = _codec.encode(obj)
        return [_value(b) for b in _core.ctx_allgather(self._token, data)]

    def share(self, obj=None, root=0):
        """Collective: a parc.Proxy to root's obj on every rank (obj is ignored elsewhere);
        the object stays on root's rank for as long as some proxy to it lives."""
        self._check_rank(root, "root")
        return self.bcast(_proxy._adopt(obj) if self.rank == root else None, root)

    def scatter(self, objs=None, root=0):
        """Rank r gets objs[r] of root's objs (a sequence of size() objects)."""
        self._check_rank(root, "root")
        parts = None
        if self.rank == root:
            objs = list(objs) if objs is not None else []
            if len(objs) != self.size:
                raise ValueError(f"parc: scatter needs one object per rank of the region "
                                 f"({self.size}), the root gave {len(objs)}")
            parts = [_codec.encode(obj) for obj in objs]
        return _value(_core.ctx_scatter(self._token, parts, root))

    def allreduce(self, obj, op=SUM):
        """op over every rank's obj, on every rank. Arrays reduce elementwise."""
        op = _check_op(op)
        if type(obj) is float and isinstance(op, str):
            return _core.ctx_allreduce_float(self._token, obj, op)
        code = _native_code(obj) if isinstance(op, str) else None
        if code is not None:
            result = self._native_copy(obj)
            _core.ctx_allreduce(self._token, result, code, op)
            return self._native_result(obj, result)
        return _fold(self.allgather(obj), op)

    def reduce(self, obj, op=SUM, root=0):
        """op over every rank's obj at root; None on the other ranks."""
        op = _check_op(op)
        self._check_rank(root, "root")
        code = _native_code(obj) if isinstance(op, str) else None
        if code is not None:
            result = self._native_copy(obj)
            _core.ctx_reduce(self._token, result, code, op, root)
            return self._native_result(obj, result) if self.rank == root else None
        values = self.gather(obj, root)
        return _fold(values, op) if self.rank == root else None

    def send(self, obj, dest, tag=0):
        """Buffered: returns at once, so exchanges in any order cannot deadlock."""
        self._check_rank(dest, "dest")
        _core.ctx_send(self._token, _codec.encode(obj), dest, tag)

    def recv(self, source, tag=0):
        """The next obj that `source` sent to this rank with `tag`."""
        self._check_rank(source, "source")
        return _value(_core.ctx_recv(self._token, source, tag))

    def sendrecv(self, obj, dest, source=None, tag=0):
        """Sends obj to dest and receives from source (default: dest): a halo exchange."""
        self.send(obj, dest, tag)
        return self.recv(dest if source is None else source, tag)

    @staticmethod
    def _native_copy(obj):
        return numpy.array([obj]) if isinstance(obj, float) else numpy.array(obj, order="C")

    @staticmethod
    def _native_result(obj, result):
        if isinstance(obj, float):
            return float(result[0])
        return result[()] if isinstance(obj, numpy.number) else result


class SpmdRun:
    """A region started with Spmd.submit; result() waits for it."""

    def __init__(self, region, name, decode=_codec.decode):
        self._region = region
        self._name = name
        self._decode = decode
        self._results = {}
        self._errors = {}
        self._cancelled = set()
        self._finished = False

    @property
    def ranks(self):
        """The world ranks of the region: region rank r is ranks[r]."""
        return list(self._region.ranks)

    def _collect(self):
        results, errors, cancelled = self._region.outcomes()
        for index, buffer in results:
            self._results[index] = buffer
        for index, error in errors:
            if error[6] == "parc.python_call":  # a callable sent by value: name it
                error = (*error[:6], f"py:{self._name}", *error[7:])
            exc = _errors.rebuild(error)
            exc.add_note(f"SPMD region rank {index} of {len(self._region.ranks)} "
                         f"(world rank {self._region.ranks[index]})")
            exc.parc_region_rank = index
            self._errors[index] = exc
        self._cancelled.update(cancelled)

    def done(self):
        if not self._finished:
            self._finished = self._region.wait(0)
        return self._finished

    def result(self, timeout=None):
        """Per-rank results in region-rank order. Raises parc.ParallelException with each
        failed rank's own exception (ranks released because another failed are not in
        it), TaskTimeout's when the region ran out of time, or TimeoutError when
        `timeout` seconds pass first (the region keeps running)."""
        if not self._finished:
            self._finished = self._region.wait(-1.0 if timeout is None else float(timeout))
        self._collect()
        if not self._finished:
            raise TimeoutError(f"parc: the SPMD region of {self._name} did not finish within "
                               f"{timeout} s")
        if self._errors:
            errors = [self._errors[i] for i in sorted(self._errors)]
            group = ParallelException(
                f"{len(errors)} of {len(self._region.ranks)} ranks of the SPMD region of "
                f"{self._name} failed", errors)
            raise group.with_traceback(errors[0].__traceback__)
        if self._cancelled:
            raise _errors.CancelledError(f"parc: the SPMD region of {self._name} was cancelled")
        values = []
        for index in range(len(self._region.ranks)):
            try:
                values.append(self._decode(memoryview(self._results[index])))
            except Exception as error:
                error.add_note(f"parc: the result of SPMD region rank {index} could not be "
                               "unpickled on the manager")
                raise
        return values

    def cancel(self):
        """Releases the region's ranks: they raise CancelledError at their next parc call."""
        self._region.cancel("the manager cancelled the region")


class Spmd:
    """An SPMD manager over `ranks` (world ranks of workers; default: every worker).

    run(fn, *args) calls fn(ctx, *args) on every rank of the region and returns the
    results in region-rank order. timeout= (seconds) bounds the whole region."""

    def __init__(self, ranks=None, timeout=None):
        if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
            raise ValueError(f"parc.Spmd: timeout must be a number of seconds > 0 or None, "
                             f"got {timeout!r}")
        if ranks is not None:
            ranks = list(ranks)
            if not ranks or not all(isinstance(r, int) for r in ranks):
                raise ValueError(f"parc.Spmd: ranks must be a non-empty list of worker ranks, "
                                 f"got {ranks!r}")
        _runtime.check_manager("parc.Spmd")
        self._ranks = ranks or []
        self._timeout = float(timeout or 0)

    @property
    def ranks(self):
        return list(self._ranks) if self._ranks else _core.worker_ranks()

    def submit(self, fn, /, *args, **kwargs):
        """Starts fn(ctx, *args, **kwargs) on every rank of the region; returns an
        SpmdRun at once (regions on disjoint ranks, and farms, run meanwhile). fn may be
        a C++ SPMD closure, parc.cpp_closure(name)."""
        name = getattr(fn, "__qualname__", None) or repr(fn)
        if isinstance(fn, CppClosure):  # its arguments in the C++ archive layout
            payload = fn.encode(args, kwargs, in_region=True)
            return SpmdRun(_core.Region(fn.resolve()[0], self._ranks, payload, self._timeout),
                           name, fn.decode)
        closure, prefix = _closures.resolve(fn)
        flags = prefix[0] | _task.FLAG_SPMD
        try:
            if kwargs:
                payload = [bytes([flags | _task.FLAG_KWARGS]), prefix[1:],
                           *_codec.encode((args, kwargs))]
            else:
                payload = [bytes([flags]), prefix[1:], *_codec.encode(args)]
        except Exception as error:
            raise TypeError(f"parc: the arguments of the SPMD region cannot be pickled: "
                            f"{error}") from error
        return SpmdRun(_core.Region(closure, self._ranks, payload, self._timeout), name)

    def run(self, fn, /, *args, **kwargs):
        """fn(ctx, *args, **kwargs) on every rank of the region; the results in
        region-rank order."""
        run = self.submit(fn, *args, **kwargs)
        try:
            return run.result()
        except KeyboardInterrupt:
            run.cancel()
            deadline = time.monotonic() + 5
            while not run.done() and time.monotonic() < deadline:
                time.sleep(0.01)
            raise
