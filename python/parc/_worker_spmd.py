"""parc.Context: what an SPMD region's closure gets first, on each rank of the region (a
worker, or serially a thread of rank 0's process): its rank, the region's size, and the
collectives among the region's ranks. _worker makes one for each call of an SPMD closure.
"""

import operator

from . import _codec, _core, _proxy_caller

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
            with _proxy_caller.pickled_for(self.size):  # every rank loads it, the root too
                data = _codec.encode(obj)
        return _value(_core.ctx_bcast(self._token, data, root))

    def gather(self, obj, root=0):
        """Every rank's obj in rank order at root; None on the other ranks."""
        self._check_rank(root, "root")
        values = [_value(b) for b in _core.ctx_gather(self._token, _codec.encode(obj), root)]
        return values if self.rank == root else None

    def allgather(self, obj):
        with _proxy_caller.pickled_for(self.size):
            data = _codec.encode(obj)
        return [_value(b) for b in _core.ctx_allgather(self._token, data)]

    def share(self, obj=None, root=0):
        """Collective: a parc.Proxy to root's obj on every rank (obj is ignored elsewhere);
        the object stays on root's rank for as long as some proxy to it lives."""
        self._check_rank(root, "root")
        return self.bcast(_proxy_caller.adopt(obj) if self.rank == root else None, root)

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
