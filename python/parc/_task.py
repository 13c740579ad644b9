"""The worker side of a Python task: decode, call, encode the result or the failure.

Called by _core (with the GIL) for every task this rank runs, in MPI and serial mode.
"""

import functools
import itertools
import pickle
import reprlib
import struct
import sys
import threading
import time
import traceback

from . import _codec, _core, _errors, _output

# Task payload: a flags byte, the callable when it is not a declared closure, then the
# arguments (see _codec): args, or (args, kwargs) when FLAG_KWARGS.
FLAG_CALLABLE = 1
FLAG_KWARGS = 2
FLAG_SINGLE = 4  # the arguments are one value (a pipeline item): function(value)
FLAG_SPMD = 8  # an SPMD region's closure: called as function(ctx, *args, **kwargs)
FLAG_CALLABLE_DIGEST = 16  # the callable's digest instead: fetched once (see _closures)
FLAG_CHUNK = 32  # the arguments are (chunk,): a run of a map's inputs, see run_chunk
FLAG_CHUNK_STAR = 64  # ... each input an argument tuple
FLAG_CHUNK_STOP = 128  # ... stopping at the first failure (fail_fast)
# With FLAG_SINGLE, FLAG_CHUNK is a pipeline's chunk of items: the argument is
# (stages to pass it through untouched, the longest stage's seconds so far, items), and
# the result the same triple for the next stage (see _pipeline).
_DIGEST_SIZE = 16
fetch_callable = None  # digest -> pickled callable, from rank 0; set by _proxy
_CALLABLE_LENGTH = struct.Struct("<I")

_callables = {}  # pickled callable -> callable: a farm sends the same one many times
_repr = reprlib.Repr()
_repr.maxstring = 60
_repr.maxother = 60
serial = False  # set by _runtime at start: the manager is this process
# A task runs in this thread now (managers cannot start inside one). Per thread: serial
# SPMD regions run their ranks on threads of their own.
_state = threading.local()


def running():
    return getattr(_state, "running", False)


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
        blob = fetch_callable(key) if view[0] & FLAG_CALLABLE_DIGEST else key
        function = _callables[key] = pickle.loads(blob)
    return function, end


def describe_call(function, args, kwargs):
    name = getattr(function, "__qualname__", None) or getattr(function, "__name__", None)
    name = name or type(function).__name__
    shown = [_repr.repr(a) for a in args] + [f"{k}={_repr.repr(v)}" for k, v in kwargs.items()]
    return f"{name}({', '.join(shown)})"


def importable_class(kind):
    """The class importable under kind's name (module + qualified name), or None. A closure
    or class sent by value (cloudpickle) brings its own copies of its module's classes."""
    found = sys.modules.get(kind.__module__)
    for part in kind.__qualname__.split("."):
        found = getattr(found, part, None)
    return found if isinstance(found, type) else None


def _importable_twin(kind):
    """The importable exception class when kind is a copy of it."""
    found = importable_class(kind)
    if found is not None and found is not kind and issubclass(found, BaseException):
        return found
    return None


def _link(exc, how):
    link = {"type": _errors.qualified_name(type(exc)), "message": str(exc), "how": how,
            "args": _repr.repr(exc.args), "pickled": None}
    if not isinstance(exc, Exception):  # SystemExit & co cannot join an ExceptionGroup
        link["problem"] = f"{type(exc).__name__} is not an Exception"
        if isinstance(exc, SystemExit):
            link["message"] = f"the task called sys.exit({exc.code!r})"
        return link
    twin = _importable_twin(type(exc))
    if twin is not None:
        try:
            exc.__class__ = twin  # so that it pickles by reference, as the manager knows it
        except TypeError:
            pass
    try:
        pickled = pickle.dumps(exc, protocol=5)
        pickle.loads(pickled)  # an __init__ with extra required arguments fails here
        link["pickled"] = pickled
    except Exception as error:
        link["problem"] = f"{type(error).__name__}: {error}"
    return link


def encode_failure(exc, call, remember=True):
    """(type name, message, encoded record) of a failed task. Serially, `remember` keeps
    the live exception, so that the rebuilt one gets its traceback (pdb lands there); its
    frames keep their callers' locals alive meanwhile."""
    links, seen, current, how = [], set(), exc, None
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        links.append(_link(current, how))
        if current.__cause__ is not None:
            current, how = current.__cause__, "cause"
        elif current.__context__ is not None and not current.__suppress_context__:
            current, how = current.__context__, "context"
        else:
            current = None
    text = "".join(traceback.format_exception(exc))
    for link in links:
        link["traceback"] = text
    record = {"links": links, "call": call, "traceback": text,
              "token": _errors.remember_live(exc) if serial and remember else None}
    return links[0]["type"], links[0]["message"], pickle.dumps(record, protocol=5)


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
            failures.append((offset, encode_failure(exc, describe_call(function, args, {}))[2]))
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
            from ._spmd import Context
            args = (Context(), *args)
    except Exception as exc:
        exc.add_note(f"parc: the task could not be decoded on this rank ({call})")
        return (False, *encode_failure(exc, call))
    _state.running = True
    try:
        result = function(*args, **kwargs)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        exc.__traceback__ = exc.__traceback__.tb_next or exc.__traceback__  # drop this frame
        return (False, *encode_failure(exc, describe_call(function, args, kwargs)))
    finally:
        _output.end_task()  # while still running: a prefix names this task's rank
        _state.running = False
    try:
        if carried is not None:  # the next stage's chunk: its time is the longest stage's
            result = (0, max(carried, result[0]), result[1])
        return (True, _codec.encode(result))
    except Exception as exc:
        if shown is not function:  # a chunk: only the inputs whose results cannot go fail
            exc = _unpicklable_in_chunk(function, args[0], result[-1])
            return (False, *encode_failure(exc, call))
        call = describe_call(function, args, kwargs)
        exc.add_note(f"parc: the result of {call} ({type(result).__name__}) cannot be pickled")
        return (False, *encode_failure(exc, call))


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
            failures.append((offset, encode_failure(exc, call)[2]))
            if stop_at_first_failure:
                break
            continue
        kept.append(result)
    return _errors.ChunkFailures(failures, pickle.dumps(kept, protocol=5))
