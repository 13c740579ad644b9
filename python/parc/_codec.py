"""The bytes of arguments and results: pickle protocol 5, buffers out-of-band; and the
flags byte that starts a Python task's payload (written by the managers, read by
_worker).

A message is   u32 nbuf | u64 pickle length | u64 length per buffer | pickle | buffers
so that numpy arrays and other contiguous buffers are never copied into the pickle
stream, and are unpickled as views of the received message (which they keep alive).
"""

import functools
import os
import pickle
import struct

_COUNT = struct.Struct("<I")
_LENGTH = struct.Struct("<Q")
_SMALL_HEAD = struct.Struct("<IQ")  # no buffers: the common case, one pack

# Task payload: a flags byte, the callable when it is not a declared closure, then the
# arguments (see encode): args, or (args, kwargs) when FLAG_KWARGS.
FLAG_CALLABLE = 1
FLAG_KWARGS = 2
FLAG_SINGLE = 4  # the arguments are one value (a pipeline item): function(value)
FLAG_SPMD = 8  # an SPMD region's closure: called as function(ctx, *args, **kwargs)
FLAG_CALLABLE_DIGEST = 16  # the callable's digest instead: fetched once (see _closures)
FLAG_CHUNK = 32  # the arguments are (chunk,): a run of a map's inputs, see _worker.run_chunk
FLAG_CHUNK_STAR = 64  # ... each input an argument tuple
FLAG_CHUNK_STOP = 128  # ... stopping at the first failure (fail_fast)
# With FLAG_SINGLE, FLAG_CHUNK is a pipeline's chunk of items: the argument is
# (stages to pass it through untouched, the longest stage's seconds so far, items), and
# the result the same triple for the next stage (see _manager_pipeline).
# Without FLAG_CHUNK, FLAG_CHUNK_STOP is FLAG_KEEP: a result of keep_bytes() or more stays
# on the worker that made it, and the task's outcome is its KeptResult.
FLAG_KEEP = FLAG_CHUNK_STOP


@functools.cache
def keep_bytes():
    """PARC_KEEP_BYTES: from what size a result is kept (default 32 MiB). Below it, a
    synchronous submit(...).result() is faster with the result sent at once. A bad value
    is a ValueError, which a farm that keeps results raises when it is made."""
    text = os.environ.get("PARC_KEEP_BYTES", "").strip()
    if not text:
        return 32 << 20
    if not text.isdigit():
        raise ValueError(f"parc: PARC_KEEP_BYTES={text!r} is not a number of bytes; set it "
                         "to an integer such as 33554432 (the default, 32 MiB), or unset it")
    return int(text)


class KeptResult:
    """A task's large result, kept by the worker that made it: what the task's future
    holds on rank 0 until result() fetches it, and what a task that takes that future
    as an argument gets, to fetch where it runs (straight from the holder, not through
    rank 0). `proxy` is a parc.Proxy to the result; `nbytes` its size, pickled."""

    __slots__ = ("proxy", "nbytes")

    def __init__(self, proxy, nbytes):
        self.proxy = proxy
        self.nbytes = nbytes

    def __reduce__(self):
        return KeptResult, (self.proxy, self.nbytes)

    def __repr__(self):
        return f"<parc result of {self.nbytes} bytes kept by rank {self.proxy.owner}>"

    def value(self):
        """The result itself: a copy from its holder (the object itself on the holder)."""
        return self.proxy.resolve()


def size_of(parts):
    """The bytes of an encoded message."""
    return sum(p.nbytes if type(p) is memoryview else len(p) for p in parts)


def encode(obj):
    """The parts (buffer-protocol objects) whose concatenation is the message."""
    buffers = []
    data = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    if not buffers:
        return [_SMALL_HEAD.pack(0, len(data)), data]
    views = [buffer.raw() for buffer in buffers]
    head = struct.pack(f"<I{len(views) + 1}Q", len(views), len(data), *(v.nbytes for v in views))
    return [head, data, *views]


def decode(view, offset=0):
    """The object in `view` (a memoryview) from `offset`; buffers stay views of it."""
    (count,) = _COUNT.unpack_from(view, offset)
    offset += _COUNT.size
    lengths = struct.unpack_from(f"<{count + 1}Q", view, offset)
    offset += _LENGTH.size * (count + 1)
    end = offset + lengths[0]
    data = view[offset:end]
    buffers = []
    for length in lengths[1:]:
        buffers.append(view[end:end + length])
        end += length
    return pickle.loads(data, buffers=buffers)
