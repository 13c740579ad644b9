"""The owner's side of parc.Proxy: what the rank that owns an object runs for proxies.

_core calls build, serve, describe_bytes and raw_layout (registered by the package's
__init__) on the owner's progress thread, with the GIL, for requests from other ranks;
_proxy_caller serves a request to an object of its own rank with serve_local.
"""

import os
import pickle
import socket

from . import _codec, _errors
from ._errors import UsageError

# Request operations, the first item of every request.
GET, SET, CALL, RESOLVE, GETITEM, SETITEM, DELITEM, LEN, CONTAINS, INVOKE = range(10)

_host, _pid = socket.gethostname(), os.getpid()
_types = {}  # type -> (name, method names): described once per type


def describe_request(kind, op, name, args, kwargs):
    """How a request reads in an error: Counter.add(5), Counter.value, Counter[3] ..."""
    shown = _errors.describe_call(lambda: None, args, kwargs or {})
    shown = shown[shown.index("("):]
    if op == CALL:
        return f"{kind}.{name}{shown}"
    if op == GET:
        return f"{kind}.{name}"
    if op == SET:
        return f"{kind}.{name} = {shown[1:-1]}"
    if op in (GETITEM, SETITEM, DELITEM):
        return f"{kind}[{shown[1:-1]}]"
    return f"{kind}: {('get', 'set', 'call', 'resolve', 'getitem', 'setitem', 'delitem', 'len', 'contains', 'call')[op]}{shown}"


def describe(obj):
    """(type name, method names, raw layout) that proxies to obj carry."""
    kind = type(obj)
    known = _types.get(kind)
    if known is None:
        methods = frozenset(name for name in dir(kind)
                            if not name.startswith("__") and callable(getattr(kind, name, None)))
        known = _types[kind] = (f"{kind.__module__}.{kind.__qualname__}", methods)
    raw = None
    if raw_layout(obj) is not None:
        raw = (obj.dtype, tuple(obj.shape))
    return (*known, raw)


def raw_layout(obj):
    """(rows, bytes per row) when obj is an array readable in place, else None."""
    kind = type(obj)
    if kind.__module__ != "numpy" or kind.__name__ != "ndarray":
        return None
    if not obj.flags.c_contiguous or obj.dtype.hasobject:
        return None
    rows = obj.shape[0] if obj.ndim else 1
    return rows, (obj.nbytes // rows if rows else obj.itemsize * _product(obj.shape[1:]))


def _product(values):
    result = 1
    for value in values:
        result *= value
    return result


def _failure(exc, call):
    # Not remembered: its frames would keep the caller's proxies alive (serial mode).
    return _codec.encode((_errors.encode_failure(exc, call, remember=False)[2], _host, _pid))


def build(view):
    """(True, object) or (False, failure parts), for a create request."""
    call = "<factory>"
    try:
        blob, args, kwargs = _codec.decode(memoryview(view))
        factory = pickle.loads(blob)
        if isinstance(factory, type):  # a class of __main__ arrives by value: its objects
            factory = _errors.importable_class(factory) or factory  # pickle by reference
        call = _errors.describe_call(factory, args, kwargs)
        return True, factory(*args, **kwargs)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # sys.exit too: a failure of this request, as in a task
        return False, _failure(exc, call)


def describe_bytes(obj):
    return pickle.dumps(describe(obj), protocol=5)


def serve_local(obj, op, name, args, kwargs):
    if op == GET:
        return getattr(obj, name)
    if op == SET:
        setattr(obj, name, args[0])
        return None
    if op == CALL:
        return getattr(obj, name)(*args, **kwargs)
    if op == RESOLVE:
        return obj
    if op == GETITEM:
        return obj[args[0]]
    if op == SETITEM:
        obj[args[0]] = args[1]
        return None
    if op == DELITEM:
        del obj[args[0]]
        return None
    if op == LEN:
        return len(obj)
    if op == CONTAINS:
        return args[0] in obj
    if op == INVOKE:
        return obj(*args, **kwargs)
    raise UsageError(f"parc: unknown proxy operation {op}")


def serve(obj, view):
    """(True, reply parts) or (False, failure parts), for one request to obj."""
    op = name = None
    args, kwargs = (), {}
    try:
        op, name, args, kwargs = _codec.decode(memoryview(view))
        return True, _codec.encode(serve_local(obj, op, name, args, kwargs))
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # sys.exit too: a failure of this request, as in a task
        return False, _failure(
            exc, describe_request(type(obj).__qualname__, op, name, args, kwargs))
