"""parc.Proxy, the caller's side: a handle to an object owned by one rank (PyGAS's proxy
objects), used on any rank that holds one.

Attribute reads and writes, method calls and item access through a proxy run at the
owner, whoever calls; the owner's progress thread answers while the owner is busy
(_proxy_owner). A proxy pickles as a reference, so it travels in task arguments,
results, SPMD messages and other proxied objects; the owner drops the object once no
proxy on any rank names it.
"""

import contextlib
import pickle
import threading
import weakref

from . import _closures, _codec, _core, _errors, _proxy_owner, _runtime
from ._errors import UsageError
from ._futures import Future
from ._proxy_owner import (CALL, CONTAINS, DELITEM, GET, GETITEM, INVOKE, LEN, RESOLVE,
                           SET, SETITEM)

_RESERVED = ("owner", "resolve", "async_", "create")
_state = threading.local()  # uses: how many loads the pickles made now are for


@contextlib.contextmanager
def pickled_for(loads):
    """Proxies pickled inside are each good for `loads` loads (a bcast loads on every
    rank): the owner keeps the object until that many have arrived."""
    before = getattr(_state, "uses", 1)
    _state.uses = max(1, loads)
    try:
        yield
    finally:
        _state.uses = before


class Proxy:
    """A handle to an object on rank `owner`: `p.attr`, `p.attr = v`, `p.method(...)`,
    `p[key]`, `len(p)` and `key in p` run there. Reserved names: `owner`, `resolve`,
    `async_` (for others, go through `p.async_`)."""

    __slots__ = ("_parc_handle", "_parc_info", "__weakref__")

    @classmethod
    def create(cls, factory, /, *args, owner, **kwargs):
        """factory(*args, **kwargs) built on rank `owner`; a proxy to the result."""
        _runtime.start()
        _check_owner(owner)
        if owner == _core.proxy_here():
            return adopt(factory(*args, **kwargs))
        try:
            blob = _closures.pickle_callable(factory)
        except UsageError:
            raise
        except Exception as error:
            raise TypeError(
                f"parc: {_errors.describe_call(factory, (), {})[:-2]} cannot be sent to rank "
                f"{owner}: {error}. Classes and functions of __main__ travel by value, with "
                "the globals they use: move it to a module every rank imports, or keep its "
                "unpicklable globals (locks, files) out of it") from error
        try:
            payload = _codec.encode((blob, args, kwargs))
        except Exception as error:
            call = _errors.describe_call(factory, args, kwargs)
            raise TypeError(f"parc: the arguments of {call} cannot be pickled to send them to "
                            f"rank {owner}: {error}") from error
        ok, result = _core.proxy_create(owner, payload)
        if not ok:
            raise _rebuild(result, owner, _errors.describe_call(factory, args, kwargs))
        handle, described = result
        return _make(handle, pickle.loads(bytes(described)))

    @property
    def owner(self):
        """The rank that owns the object."""
        return self._parc_handle.owner

    def resolve(self):
        """The whole object: a copy (the object itself when it is local). numpy arrays come
        raw, straight from the owner's memory into a fresh array."""
        local = _local(self)
        if local is not None:
            return local
        raw = self._parc_info[2]
        if raw is not None:
            return _read_rows(self, raw, 0, _rows(raw))
        return _call(self, RESOLVE)

    @property
    def async_(self):
        """The same operations returning parc.Futures: `p.async_.method(...)`,
        `p.async_.attr`, `p.async_.resolve()`, `p.async_[key]`."""
        return _Async(self)

    def __getattr__(self, name):
        if name.startswith("_parc_") or (name.startswith("__") and name.endswith("__")):
            # Special names are the proxy's (libraries probe for __array__ & co): use
            # p.async_ to reach the object's.
            raise AttributeError(f"parc.Proxy has no attribute {name!r}")
        if name in self._parc_info[1]:
            return _Method(self, name)
        local = _local(self)
        if local is not None:
            return getattr(local, name)
        return _call(self, GET, name)

    def __setattr__(self, name, value):
        if name.startswith("_parc_"):
            object.__setattr__(self, name, value)
            return
        if name in _RESERVED:
            raise AttributeError(f"parc.Proxy.{name} is the proxy's own; set it through a "
                                 f"method of the object")
        local = _local(self)
        if local is not None:
            setattr(local, name, value)
            return
        _call(self, SET, name, (value,))

    def __getitem__(self, key):
        local = _local(self)
        if local is not None:
            return local[key]
        raw = self._parc_info[2]
        rows = _row_range(raw, key)
        if rows is not None:
            return _read_rows(self, raw, *rows)
        return _call(self, GETITEM, None, (key,))

    def __setitem__(self, key, value):
        local = _local(self)
        if local is not None:
            local[key] = value
            return
        _call(self, SETITEM, None, (key, value))

    def __delitem__(self, key):
        local = _local(self)
        if local is not None:
            del local[key]
            return
        _call(self, DELITEM, None, (key,))

    def __len__(self):
        local = _local(self)
        return len(local) if local is not None else _call(self, LEN)

    def __contains__(self, key):
        local = _local(self)
        return key in local if local is not None else _call(self, CONTAINS, None, (key,))

    def __iter__(self):
        # Python would otherwise iterate with p[0], p[1], ...: a round trip per item.
        raise TypeError("parc: a proxy is not iterable (each item would be a round trip to "
                        "its owner); iterate over p.resolve(), a copy, or have a method of "
                        "the object do the loop at the owner")

    def __call__(self, *args, **kwargs):
        local = _local(self)
        if local is not None:
            return local(*args, **kwargs)
        return _call(self, INVOKE, None, args, kwargs)

    def __reduce__(self):
        handle = self._parc_handle
        token = _core.proxy_export(handle, getattr(_state, "uses", 1))
        return _load, (handle.owner, handle.serial, token, self._parc_info, _core.job_id())

    def __copy__(self):
        return _make(_core.proxy_retain(self._parc_handle), self._parc_info)

    def __deepcopy__(self, memo):
        return self.__copy__()

    def __repr__(self):
        handle = self._parc_handle
        return f"<parc.Proxy to a {self._parc_info[0]} on rank {handle.owner} (#{handle.serial})>"

    def __eq__(self, other):
        if not isinstance(other, Proxy):
            return NotImplemented
        return (self.owner, self._parc_handle.serial) == (other.owner, other._parc_handle.serial)

    def __hash__(self):
        return hash((self.owner, self._parc_handle.serial))


class _Method:
    """p.method: calling it runs the method at the owner."""

    __slots__ = ("_proxy", "_name")

    def __init__(self, proxy, name):
        self._proxy = proxy
        self._name = name

    def __call__(self, *args, **kwargs):
        local = _local(self._proxy)
        if local is not None:
            return getattr(local, self._name)(*args, **kwargs)
        return _call(self._proxy, CALL, self._name, args, kwargs)

    def __repr__(self):
        return f"<method {self._name} of {self._proxy!r}>"


class _Async:
    """p.async_: every operation returns a parc.Future at once."""

    __slots__ = ("_proxy",)

    def __init__(self, proxy):
        object.__setattr__(self, "_proxy", proxy)

    def __getattr__(self, name):
        proxy = self._proxy
        if name in proxy._parc_info[1]:
            return lambda *args, **kwargs: _submit(proxy, CALL, name, args, kwargs)
        return _submit(proxy, GET, name)

    def resolve(self):
        proxy = self._proxy
        raw = proxy._parc_info[2]
        if raw is not None and _local(proxy) is None:
            return _submit_read(proxy, raw, 0, _rows(raw))
        return _submit(proxy, RESOLVE)

    def __getitem__(self, key):
        proxy = self._proxy
        rows = _row_range(proxy._parc_info[2], key)
        if rows is not None and _local(proxy) is None:
            return _submit_read(proxy, proxy._parc_info[2], *rows)
        return _submit(proxy, GETITEM, None, (key,))


def is_local(proxy):
    """True when this process owns the proxy's object: access needs no message."""
    if not isinstance(proxy, Proxy):
        raise TypeError(f"parc.is_local takes a parc.Proxy, not {type(proxy).__name__}")
    return proxy.owner == _core.proxy_here()


def live_objects(rank):
    """How many objects `rank` owns for proxies, once every rank's releases sent so far
    have arrived there."""
    _runtime.start()
    _check_owner(rank)
    return _core.proxy_live_objects(rank)


def _check_owner(owner):
    if isinstance(owner, bool) or not isinstance(owner, int):
        raise TypeError(f"parc: owner must be a rank (an int), got {owner!r}")
    owners = _owners()
    if not 0 <= owner < owners:
        where = (f"the job has {owners} ranks" if not _core.serial()
                 else f"serially, ranks 0-{owners - 1} are simulated (PARC_SERIAL sets how many)")
        raise UsageError(f"parc: owner rank {owner} does not exist: {where}; pick an owner "
                         f"from 0 to {owners - 1} (parc.workers() is the last)")


def _owners():
    return _setup()[1]


def _setup():
    info = getattr(_setup, "info", None)
    if info is None:
        _runtime.start()
        info = _setup.info = _core.proxy_setup()
    return info


def _make(handle, info):
    proxy = object.__new__(Proxy)
    object.__setattr__(proxy, "_parc_handle", handle)
    object.__setattr__(proxy, "_parc_info", info)
    return proxy


def adopt(obj):
    """A proxy to obj, which this rank owns from now on."""
    _setup()
    if isinstance(obj, Proxy):
        return obj
    return _make(_core.proxy_adopt(obj), _proxy_owner.describe(obj))


def _load(owner, serial, token, info, job):
    _runtime.start()
    owners = _owners()
    # Refused before registering: a release sent to a rank that does not exist would
    # abort the whole job inside MPI, and another job's object numbers mean nothing here.
    if not 0 <= owner < owners:
        raise UsageError(f"parc: this proxy's object is owned by rank {owner}, which does not "
                         f"exist in this job ({owners} ranks): a proxy pickled in another job "
                         "cannot be loaded here")
    if job != _core.job_id():
        raise UsageError("parc: this proxy was pickled in another job, whose objects are gone: "
                         "a proxy is a reference within one job; to keep an object across "
                         "jobs, pickle the object itself (p.resolve())")
    return _make(_core.proxy_import(owner, serial, token), info)


def _local(proxy):
    handle = proxy._parc_handle
    if handle.owner != _core.proxy_here():  # serially: the simulated rank of a task
        return None
    return _core.proxy_local(handle)


def _call(proxy, op, name=None, args=(), kwargs=None):
    return _finish(proxy, _send(proxy, op, name, args, kwargs), op, name, args, kwargs)


def _send(proxy, op, name, args, kwargs):
    try:
        request = _codec.encode((op, name, args, kwargs or {}))
    except Exception as error:
        raise TypeError(f"parc: {_describe_op(proxy, op, name, args, kwargs)} cannot be sent "
                        f"to rank {proxy.owner}: its arguments cannot be pickled ({error})") \
            from error
    return _core.proxy_call(proxy._parc_handle, request)


def _finish(proxy, pending, op, name, args, kwargs):
    ok, data = pending.outcome()
    if not ok:
        raise _rebuild(data, proxy.owner, _describe_op(proxy, op, name, args, kwargs))
    return _codec.decode(memoryview(data))


class _Reply:
    """Drives one request's parc.Future: waiting on the future waits for the reply."""

    def __init__(self, pending, finish):
        self._pending = pending
        self._finish = finish
        self._future = None


    def _poll(self):
        if self._pending is not None and self._pending.ready():
            self._complete()

    def _wait_for(self, condition, timeout):
        if condition() or self._pending is None:
            return
        if not self._pending.wait(-1.0 if timeout is None else max(0.0, timeout)):
            raise TimeoutError("parc: the proxy's owner has not answered yet")
        self._complete()

    def _cancel(self, index):
        return False  # the owner may already be running it

    def _complete(self):
        pending, self._pending = self._pending, None
        finish, self._finish = self._finish, None
        future = self._future()
        try:
            value = finish(pending)
        except BaseException as error:
            if future is not None:
                future.set_exception(error)
        else:
            if future is not None:
                future.set_result(value)


def _future_of(pending, finish):
    reply = _Reply(pending, finish)
    future = Future(reply, None)
    reply._future = weakref.ref(future)  # the future holds the reply, not the other way
    return future


def _submit(proxy, op, name=None, args=(), kwargs=None):
    local = _local(proxy)
    if local is not None:
        future = Future(_Reply(None, None), None)
        try:
            future.set_result(_proxy_owner.serve_local(local, op, name, args, kwargs or {}))
        except Exception as error:
            future.set_exception(error)
        return future
    pending = _send(proxy, op, name, args, kwargs)
    return _future_of(pending, lambda p: _finish(proxy, p, op, name, args, kwargs))


def _rows(raw):
    shape = raw[1]
    return shape[0] if shape else 1


def _row_range(raw, key):
    """(begin, end) when key selects whole rows of a raw array with step 1, else None."""
    if raw is None or not raw[1]:
        return None
    if isinstance(key, tuple) and len(key) == 1:
        key = key[0]
    if not isinstance(key, slice):
        return None
    begin, end, step = key.indices(raw[1][0])
    if step != 1:
        return None
    return begin, max(begin, end)


def _new_array(raw, begin, end):
    import numpy
    dtype, shape = raw
    return numpy.empty(((end - begin), *shape[1:]) if shape else (), dtype=dtype)


def _read_rows(proxy, raw, begin, end):
    out = _new_array(raw, begin, end)
    _core.proxy_read(proxy._parc_handle, begin, end, out).outcome()
    return out


def _submit_read(proxy, raw, begin, end):
    out = _new_array(raw, begin, end)
    pending = _core.proxy_read(proxy._parc_handle, begin, end, out)

    def finish(p):
        p.outcome()
        return out
    return _future_of(pending, finish)


def _describe_op(proxy, op, name, args, kwargs):
    return _proxy_owner.describe_request(proxy._parc_info[0].rpartition(".")[2], op, name,
                                         args, kwargs)


def _rebuild(data, owner, call):
    record, host, pid = _codec.decode(memoryview(data))
    exc, _, traceback_text = _errors.rebuild_python(pickle.loads(record))
    exc.add_note(f"rank {owner} (host {host}, pid {pid}), proxy call: {call}")
    if traceback_text:
        exc.add_note("remote traceback:\n" + traceback_text.rstrip("\n"))
    exc.parc_rank = owner
    exc.parc_host = host
    exc.parc_pid = pid
    return exc


Proxy.__module__ = "parc"
