"""The bytes of arguments and results: pickle protocol 5, buffers out-of-band.

A message is   u32 nbuf | u64 pickle length | u64 length per buffer | pickle | buffers
so that numpy arrays and other contiguous buffers are never copied into the pickle
stream, and are unpickled as views of the received message (which they keep alive).
"""

import pickle
import struct

_COUNT = struct.Struct("<I")
_LENGTH = struct.Struct("<Q")
_SMALL_HEAD = struct.Struct("<IQ")  # no buffers: the common case, one pack


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
