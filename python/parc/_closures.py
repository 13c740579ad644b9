"""Parallel closures: declared functions (by id), other callables by reference or value."""

import collections
import ctypes
import dis
import hashlib
import itertools
import logging
import operator
import os
import pickle
import struct
import threading
import types
import weakref

from . import _codec, _core
from ._cpp import CppClosure
from ._errors import UsageError

try:
    import cloudpickle
except ImportError:  # optional: only lambdas, nested and __main__ functions need it
    cloudpickle = None

_declared = {}  # closure name -> function, in declaration order
_ids = None  # closure name -> id, once the runtime has started
_PYTHON_CALL = "parc.python_call"


def _module_name(function):
    module = function.__module__
    # `python3 -m parc app.py` imports the script as __mp_main__ on the workers.
    return "__main__" if module == "__mp_main__" else module


def closure_name(function):
    return f"py:{_module_name(function)}.{function.__qualname__}"


def closure(function):
    """Declares `function` as a parallel closure: it is called by id on the workers.

    Declare closures at the top level of a module that every rank imports, before
    parc.run: each rank's table of closures is checked against rank 0's at start-up."""
    if not callable(function) or not hasattr(function, "__qualname__"):
        raise UsageError(f"parc.closure: {function!r} is not a function; decorate a function "
                         "defined with def at module top level")
    name = closure_name(function)
    if "<locals>" in function.__qualname__ or "<lambda>" in function.__qualname__:
        raise UsageError(
            f"parc.closure: {function.__qualname__} is defined inside a function (or is a "
            "lambda), so the other ranks do not have it. Define it at module top level, or "
            "submit it undecorated: it is then sent by value (cloudpickle).")
    function.__parc_closure__ = name
    if name in _declared:
        return function
    _declared[name] = function
    if _ids is None:
        _core.declare_closure(name, function)
    else:
        logging.getLogger("parc").warning(
            "parc.closure %s is declared after the runtime started, so it is not in the "
            "checked table: it is sent by reference instead of by id. Declare closures at "
            "module top level, before parc.run.", function.__qualname__)
    return function


def load_library(path):
    """Loads a shared library whose PARC_CLOSURE declarations become callable with
    cpp_closure(name). Call it on every rank, before parc.run."""
    if _ids is not None:
        raise UsageError(f"parc.load_library({path!r}) after the runtime started: load C++ "
                         "closures before parc.run (or any other parc call) on every rank")
    if not os.path.exists(path):
        raise FileNotFoundError(f"parc.load_library: no such file: {path}")
    return ctypes.CDLL(os.path.abspath(path), mode=ctypes.RTLD_GLOBAL)


def on_start():
    global _ids
    _ids = {name: entry[0] for name, entry in _core.closure_table().items()}


def declared_count():
    """How many Python closures this rank declared."""
    return len(_declared)


def closure_table():
    """{name: (id, signature)} of every closure this rank declared (C++ and Python)."""
    return dict(_core.closure_table())


# Encoded callables, by callable: weak, so a submitted function or object is not kept
# alive by parc once its tasks are done.
_prefixes = weakref.WeakKeyDictionary()
_CALLABLE = struct.Struct("<BI")


def _pickle_by_value(function):
    if cloudpickle is None:
        kind = "a lambda" if function.__name__ == "<lambda>" else "a nested function"
        raise UsageError(
            f"parc cannot send {function.__qualname__}: it is {kind}, which the workers can "
            "only receive by value, and cloudpickle is not installed. Define it at module "
            "top level (and decorate it with @parc.closure), or install python3-cloudpickle.")
    return cloudpickle.dumps(function, protocol=5)


def pickle_callable(function):
    qualname = getattr(function, "__qualname__", "")
    module = getattr(function, "__module__", None)
    local = "<locals>" in qualname or "<lambda>" in qualname
    if local or (module in ("__main__", "__mp_main__") and cloudpickle is not None):
        return _pickle_by_value(function)
    try:
        return pickle.dumps(function, protocol=5)
    except Exception as error:
        if cloudpickle is not None:
            try:
                return cloudpickle.dumps(function, protocol=5)
            except Exception:
                pass
        raise UsageError(
            f"parc cannot send {function!r} to the workers: {error}. Submit a function "
            "defined at module top level (or any picklable callable)") from error


# A pickled callable this large (a function of __main__ with a big array among its
# globals) travels once per worker: tasks carry its digest, and a worker that lacks it
# fetches it from rank 0, which keeps the most recent ones.
SHIP_BY_DIGEST = 64 * 1024
_SHIPPED_BYTES = 256 << 20
_shipped = collections.OrderedDict()  # digest -> pickled callable, least recent first
_shipped_lock = threading.Lock()  # rank 0's progress thread reads it for the workers


def _ship(blob):
    """The payload prefix naming `blob` by digest; rank 0 keeps the blob for workers."""
    digest = hashlib.blake2b(blob, digest_size=16).digest()
    with _shipped_lock:
        _shipped[digest] = blob
        _shipped.move_to_end(digest)
        total = sum(len(b) for b in _shipped.values())
        while total > _SHIPPED_BYTES and len(_shipped) > 1:
            total -= len(_shipped.popitem(last=False)[1])
    return bytes([_codec.FLAG_CALLABLE_DIGEST]) + digest


def shipped_callable(digest):
    """On rank 0, for a worker (see SHIP_BY_DIGEST): the pickled callable of `digest`."""
    with _shipped_lock:
        blob = _shipped.get(digest)
        if blob is not None:
            _shipped.move_to_end(digest)
    if blob is None:
        raise LookupError(
            "parc: the pickled function of this task is no longer kept on rank 0 (more "
            f"than {_SHIPPED_BYTES >> 20} MiB of other large functions were sent since). "
            "Decorate it with @parc.closure, or keep its large globals in a module")
    return blob


# -- module globals that main rebinds ------------------------------------------------------
#
# Workers run a module's top-level code, not main: a global that main rebinds keeps its
# start-up value there, while serially the closure sees the new one. Just before main
# runs, each declared closure's snapshot holds the globals it reads (LOAD_GLOBAL in its
# code, nested code and the same module's functions it calls); each submit compares them
# by identity and warns once per global that changed. Mutating a global in place (a
# dict's items, a list's) is not seen.

_snapshots = {}  # closure -> (module globals, names, values at start-up)
_warned = set()  # (closure name, global name)
_MISSING = object()
_LOADS = {"LOAD_GLOBAL", "LOAD_NAME"}


def _global_reads(function):
    """The names of module globals `function` reads, directly or through the same
    module's functions it calls."""
    namespace = function.__globals__
    names, seen, codes = [], set(), [function.__code__]
    while codes:
        code = codes.pop()
        if code in seen:
            continue
        seen.add(code)
        codes.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
        for instruction in dis.get_instructions(code):
            name = instruction.argval
            if instruction.opname not in _LOADS or name in names or name not in namespace:
                continue
            names.append(name)
            value = namespace[name]
            if isinstance(value, types.FunctionType) and value.__globals__ is namespace:
                codes.append(value.__code__)
    return tuple(names)


def snapshot_globals():
    """Called on rank 0 just before main: the values the workers' modules also have."""
    _snapshots.clear()
    for function in _declared.values():
        if isinstance(function, types.FunctionType):
            names = _global_reads(function)
            if not names:  # nothing to check at each submit
                continue
            namespace = function.__globals__
            _snapshots[function] = (namespace, names, tuple(namespace[n] for n in names))


def check_globals(function):
    """Warns when a global `function` reads was rebound since main started."""
    snapshot = _snapshots.get(function)
    if snapshot is None:
        return
    namespace, names, values = snapshot
    if all(map(operator.is_, map(namespace.get, names, itertools.repeat(_MISSING)), values)):
        return
    for name, value in zip(names, values):
        if namespace.get(name, _MISSING) is value or (function.__qualname__, name) in _warned:
            continue
        _warned.add((function.__qualname__, name))
        logging.getLogger("parc").warning(
            "closure %s reads the global %s of module %s, which changed after main started: "
            "workers under MPI still have its value from start-up, while serially the task "
            "sees the new one. Pass it to the closure as an argument.",
            function.__qualname__, name, _module_name(function))
    # The values now: the old ones are not kept alive, and the next check is quick again.
    _snapshots[function] = (namespace, names, tuple(namespace.get(n, _MISSING) for n in names))


def resolve(function):
    """(closure id, payload prefix) for calling `function` on a worker."""
    if _snapshots:
        check_globals(function)
    try:
        cached = _prefixes.get(function)
    except TypeError:  # unhashable callable object
        cached = None
    if cached is not None:
        return cached
    if isinstance(function, CppClosure):  # encoded by its wire signature, no prefix
        return function.resolve()[0], b""
    if not callable(function):
        raise TypeError(f"parc: {function!r} is not callable")
    name = getattr(function, "__parc_closure__", None)
    if name is not None and name in _ids:
        resolved = (_ids[name], bytes([0]))
    else:
        blob = pickle_callable(function)
        if len(blob) >= SHIP_BY_DIGEST:
            resolved = (_ids[_PYTHON_CALL], _ship(blob))
        else:
            resolved = (_ids[_PYTHON_CALL],
                        _CALLABLE.pack(_codec.FLAG_CALLABLE, len(blob)) + blob)
    if not isinstance(function, types.MethodType):  # a new object at every access
        try:
            _prefixes[function] = resolved
        except TypeError:  # unhashable, or no weak references (builtins): not cached
            pass
    return resolved
