"""The worker's side of a Python task: decode, call, encode the result or the failure.

_core calls execute (registered by the package's __init__) with the GIL for every task
this rank runs: on the workers under MPI, and in rank 0's process in serial mode.
"""

import functools
import itertools
import pickle
import struct
import time

from . import _closures, _codec, _core, _errors, _output, _proxy_caller, _runtime
from ._codec import (FLAG_CALLABLE_DIGEST, FLAG_CHUNK, FLAG_CHUNK_STAR, FLAG_CHUNK_STOP,
                     FLAG_KEEP, FLAG_KWARGS, FLAG_SINGLE, FLAG_SPMD, KeptResult)
from ._errors import describe_call
from ._worker_spmd import Context

_DIGEST_SIZE = 16
_CALLABLE_LENGTH = struct.Struct("<I")
_callables = {}  # pickled callable -> callable: a farm sends the same one many times


def _fetch_callable(digest):
    """A worker's copy of a large pickled callable, from rank 0 (which runs the task
    itself serially)."""
    if _core.serial():
        return _closures.shipped_callable(digest)
    return _proxy_caller.Proxy.create(_closures.shipped_callable, digest, owner=0).resolve()


def _callable_at(view):
    """The callable a task carries (FLAG_CALLABLE) or names by digest
    (FLAG_CALLABLE_DIGEST), and the offset of its arguments."""
    if view[0] & FLAG_CALLABLE_DIGEST:
        end = 1 + _DIGEST_SIZE
        key = bytes(view[1:end])
    else:
        (length,) = _CALLABLE_LENGTH.unpack_from(view, 1)
        start = 1 + _CALLABLE_LENGTH.size
        end = start + length
        key = bytes(view[start:end])
    function = _callables.get(key)
    if function is None:
        if len(_callables) > 256:
            _callables.clear()
        blob = _fetch_callable(key) if view[0] & FLAG_CALLABLE_DIGEST else key
        function = _callables[key] = pickle.loads(blob)
    return function, end


def _encode_failure(exc, call):
    """(type name, message, encoded record) of a failed task; serially the live exception
    is kept for the rebuilt one's traceback (see _errors.encode_failure)."""
    return _errors.encode_failure(exc, call, remember=_core.serial())


def run_chunk(function, star, stop_at_first_failure, chunk):
    """One task of a map that carries a run of inputs (batched automatically, or by
    chunksize): function over each input (an argument tuple when `star`). Returns the
    seconds the calls took (the manager sizes the next runs from it) and the results.
    Every input runs (up to the first failure under fail_fast); when some fail, raises
    ChunkFailures with each failure and the results of all the others."""
    start = time.perf_counter()
    calls = itertools.starmap(function, chunk) if star else map(function, chunk)
    results, failures = [], []
    while True:
        try:
            results.extend(calls)  # keeps what ran before a failure; `calls` goes on after it
            break
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            offset = len(results) + len(failures)
            exc.__traceback__ = exc.__traceback__.tb_next or exc.__traceback__
            args = chunk[offset] if star else (chunk[offset],)
            failures.append((offset, _encode_failure(exc, describe_call(function, args, {}))[2]))
            if stop_at_first_failure:
                break
    seconds = time.perf_counter() - start
    if failures:
        try:
            kept = pickle.dumps(results, protocol=5)
        except Exception:  # they could not have been sent anyway; the failures still are
            kept = None
        raise _errors.ChunkFailures(failures, kept)
    return seconds, results


def execute(function, payload):
    """Runs one task; returns (True, result parts) or (False, type, message, record)."""
    view = memoryview(payload)
    call = "<task>"
    try:
        flags = view[0]
        offset = 1
        if function is None:
            function, offset = _callable_at(view)
        shown = function  # a map's chunk is named after the mapped function
        if flags & FLAG_CHUNK:
            function = functools.partial(run_chunk, function, bool(flags & FLAG_CHUNK_STAR),
                                         bool(flags & FLAG_CHUNK_STOP))
        call = describe_call(shown, (), {}).replace("()", "(...)")
        _core.note_task_call(call)
        arguments = _codec.decode(view, offset)
        carried = None
        if flags & FLAG_SINGLE and flags & FLAG_CHUNK:  # a pipeline stage's chunk of items
            skip, carried, chunk = arguments
            if skip:  # survivors of a failed chunk, on their way to the stage after it
                return (True, _codec.encode((skip - 1, carried, chunk)))
            args, kwargs = (chunk,), {}
        elif flags & FLAG_SINGLE:  # a pipeline stage: the previous result, as it came
            args, kwargs = (arguments,), {}
        else:
            args, kwargs = arguments if flags & FLAG_KWARGS else (arguments, {})
        if flags & FLAG_SPMD:
            args = (Context(), *args)
    except Exception as exc:
        exc.add_note(f"parc: the task could not be decoded on this rank ({call})")
        return (False, *_encode_failure(exc, call))
    if kwargs or flags & FLAG_CHUNK or KeptResult in map(type, args):
        try:
            args, kwargs = _fetch_kept(args, kwargs, flags)
        except Exception as exc:
            return (False, *_encode_failure(exc, call))
    _runtime.set_in_task(True)
    try:
        result = function(*args, **kwargs)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        exc.__traceback__ = exc.__traceback__.tb_next or exc.__traceback__  # drop this frame
        return (False, *_encode_failure(exc, describe_call(function, args, kwargs)))
    finally:
        _output.end_task()  # while still running: a prefix names this task's rank
        _runtime.set_in_task(False)
    try:
        if carried is not None:  # the next stage's chunk: its time is the longest stage's
            result = (0, max(carried, result[0]), result[1])
        parts = _codec.encode(result)
        if flags & (FLAG_KEEP | FLAG_CHUNK) == FLAG_KEEP and (
                len(parts) > 2 or len(parts[1]) >= _codec.keep_bytes()):
            size = _codec.size_of(parts)
            if size >= _codec.keep_bytes():  # stays here: its future holds a proxy
                parts = _codec.encode(KeptResult(_proxy_caller.adopt(result), size))
        return (True, parts)
    except Exception as exc:
        if shown is not function:  # a chunk: only the inputs whose results cannot go fail
            exc = _unpicklable_in_chunk(function, args[0], result[-1])
            return (False, *_encode_failure(exc, call))
        call = describe_call(function, args, kwargs)
        exc.add_note(f"parc: the result of {call} ({type(result).__name__}) cannot be pickled")
        return (False, *_encode_failure(exc, call))


def _fetch_kept(args, kwargs, flags):
    """The arguments with each kept result (a dependency's, see KeptResult) replaced by
    its value, read from the rank that holds it. A map's input that has some is alone
    in its chunk."""
    if flags & FLAG_SINGLE:
        return args, kwargs  # a pipeline's item: a stage's result, never kept
    if flags & FLAG_CHUNK:
        chunk = args[0]
        if len(chunk) == 1:
            item = chunk[0]
            if flags & FLAG_CHUNK_STAR and KeptResult in map(type, item):
                args = ([_fetch_kept(item, None, 0)[0]],)
            elif type(item) is KeptResult:
                args = ([_fetched(item, 0)],)
        return args, kwargs
    if KeptResult in map(type, args):
        args = tuple(_fetched(a, position) if type(a) is KeptResult else a
                     for position, a in enumerate(args))
    if kwargs and KeptResult in map(type, kwargs.values()):
        kwargs = {k: _fetched(v, k) if type(v) is KeptResult else v
                  for k, v in kwargs.items()}
    return args, kwargs


def _fetched(kept, key):
    try:
        return kept.value()
    except Exception as exc:
        exc.add_note(f"parc: {_errors.argument_name(key)} of this task is the result of "
                     f"another task ({kept.nbytes} bytes), kept by rank {kept.proxy.owner}, "
                     "which could not be read from there")
        raise


def _unpicklable_in_chunk(chunk_call, chunk, results):
    """ChunkFailures for a chunk whose results did not pickle: one failure per input
    whose result cannot be pickled, the others' results kept."""
    function, star, stop_at_first_failure = chunk_call.args
    failures, kept = [], []
    for offset, (item, result) in enumerate(zip(chunk, results)):
        try:
            pickle.dumps(result, protocol=5)
        except Exception as exc:
            call = describe_call(function, item if star else (item,), {})
            exc.add_note(f"parc: the result of {call} ({type(result).__name__}) cannot be "
                         "pickled")
            failures.append((offset, _encode_failure(exc, call)[2]))
            if stop_at_first_failure:
                break
            continue
        kept.append(result)
    return _errors.ChunkFailures(failures, pickle.dumps(kept, protocol=5))
