"""The worker side of a Python task: decode, call, encode the result or the failure.

Called by _core (with the GIL) for every task this rank runs, in MPI and serial mode.
"""

import functools
import pickle
import reprlib
import struct
import sys
import threading
import traceback

from . import _codec, _core, _errors, _output

# Task payload: a flags byte, the callable when it is not a declared closure, then the
# arguments (see _codec): args, or (args, kwargs) when FLAG_KWARGS.
FLAG_CALLABLE = 1
FLAG_KWARGS = 2
FLAG_SINGLE = 4  # the arguments are one value (a pipeline item): function(value)
FLAG_SPMD = 8  # an SPMD region's closure: called as function(ctx, *args, **kwargs)
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
    (length,) = _CALLABLE_LENGTH.unpack_from(view, 1)
    start = 1 + _CALLABLE_LENGTH.size
    blob = bytes(view[start:start + length])
    function = _callables.get(blob)
    if function is None:
        if len(_callables) > 256:
            _callables.clear()
        function = _callables[blob] = pickle.loads(blob)
    return function, start + length


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


def run_chunk(function, stop_at_first_failure, chunk):
    """One task of a map with chunksize: the results of a run of inputs. Every input
    runs (up to the first failure under fail_fast); failures are raised together."""
    results, failures = [], []
    for offset, item in enumerate(chunk):
        try:
            value = function(*item)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            exc.__traceback__ = exc.__traceback__.tb_next or exc.__traceback__
            failures.append((offset, encode_failure(exc, describe_call(function, item, {}))[2]))
            if stop_at_first_failure:
                break
            continue
        if not failures:
            results.append(value)
    if failures:
        try:
            earlier = pickle.dumps(results, protocol=5)
        except Exception:  # they could not have been sent anyway; the failures still are
            earlier = None
        raise _errors.ChunkFailures(failures, earlier)
    return results


def execute(function, payload):
    """Runs one task; returns (True, result parts) or (False, type, message, record)."""
    view = memoryview(payload)
    call = "<task>"
    try:
        flags = view[0]
        offset = 1
        if function is None:
            function, offset = _callable_at(view)
        # A map's chunk is named after the mapped function (traces, the flight record).
        shown = (function.args[0] if isinstance(function, functools.partial)
                 and function.func is run_chunk and function.args else function)
        call = describe_call(shown, (), {}).replace("()", "(...)")
        _core.note_task_call(call)
        arguments = _codec.decode(view, offset)
        if flags & FLAG_SINGLE:  # a pipeline stage: the previous result, as it came
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
        return (True, _codec.encode(result))
    except Exception as exc:
        call = describe_call(function, args, kwargs)
        exc.add_note(f"parc: the result of {call} ({type(result).__name__}) cannot be pickled")
        return (False, *encode_failure(exc, call))
