"""parc's exception types; a failure encoded where it happened (a worker's task, a
proxy owner's request) and rebuilt where it is reported."""

import concurrent.futures
import pickle
import reprlib
import sys
import traceback

from . import _core


class ParallelException(ExceptionGroup):
    """Every failure of one manager operation; `except* ValueError` matches members.

    Each member keeps its original type and chain, and carries PEP 678 notes naming the
    rank, host, pid, task and call, plus the remote traceback; attributes parc_rank,
    parc_task, parc_host (and parc_index for an input of map)."""

    def derive(self, excs):
        return parallel_exception(self.message, excs)

    def __reduce__(self):
        return parallel_exception, (self.message, list(self.exceptions))


# Subclasses of a parc exception type that are also the type of the failures it stands
# for, by (parc type, that type); None where the two cannot be combined.
_combined_types = {}


def _combined_type(base, kind, **attributes):
    """`base` and `kind` in one class, or None when they cannot be combined (types with
    their own instance layout, such as OSError)."""
    key = (base, kind)
    if key not in _combined_types:
        try:
            # Named as the base: tracebacks and type names read as before.
            _combined_types[key] = type(base.__name__, (base, kind),
                                        {"__module__": "parc", **attributes})
        except TypeError:
            _combined_types[key] = None
    return _combined_types[key]


def _typed_group(kind):
    return _combined_type(ParallelException, kind)


def parallel_exception(message, errors):
    """The group of one operation's failures. It is also an instance of the type its
    members share (the most specific one below Exception that can be combined), so
    `except ValueError:` around `list(farm.map(...))` still catches a task's ValueError,
    as with concurrent.futures, while `except* ValueError` and `except
    parc.ParallelException` work as for any group."""
    errors = list(errors)
    if errors and all(isinstance(e, Exception) and not isinstance(e, BaseExceptionGroup)
                      for e in errors):
        for kind in type(errors[0]).__mro__:
            if kind in (Exception, BaseException, object):
                break
            if all(isinstance(e, kind) for e in errors):
                typed = _typed_group(kind)
                if typed is not None:
                    return typed(message, errors)
    return ParallelException(message, errors)


class RemoteError(Exception):
    """A remote exception that could not be rebuilt as itself on the manager."""

    def __init__(self, type_name, message, args_repr="", traceback_text=""):
        super().__init__(f"{type_name}: {message}" if message else type_name)
        self.type_name = type_name
        self.message = message
        self.args_repr = args_repr
        self.traceback_text = traceback_text

    def __reduce__(self):
        return (RemoteError, (self.type_name, self.message, self.args_repr, self.traceback_text))


class TaskTimeout(TimeoutError):
    """A task ran longer than its farm's timeout."""


class DependencyError(Exception):
    """A task did not run because a future among its arguments failed. Its __cause__ is
    that failure (a DependencyError in turn, down a chain of dependent tasks), and it is
    also an instance of the type of the failure at the root of the chain where the two
    combine, so `except ValueError:` around the result of a dependent task still works.
    Attributes: parc_call, the call that did not run; parc_root, the root failure."""

    __str__ = BaseException.__str__  # the message, not a combined type's own rendering
    _parc_root_type = None

    def __reduce__(self):
        return dependency_error, (str(self), self._parc_root_type), self.__dict__


def dependency_error(message, root_type=None):
    """A DependencyError that is also a root_type, when the two combine (not OSError and
    the like, nor a type whose constructor wants more than a message)."""
    if root_type is not None and issubclass(root_type, Exception) and not issubclass(
            root_type, (BaseExceptionGroup, DependencyError)):
        typed = _combined_type(DependencyError, root_type, _parc_root_type=root_type)
        if typed is not None:
            try:
                return typed(message)
            except TypeError:
                pass
    return DependencyError(message)


def argument_name(key):
    """How an argument (a position in args from 0, or a keyword) is named in errors."""
    return f"argument {key + 1}" if isinstance(key, int) else f"keyword argument {key!r}"


def _failure_text(root):
    """(what failed, how) of the failure at the root of a chain of dependencies."""
    text = f"{type(root).__qualname__}: {root}" if str(root) else type(root).__qualname__
    task = getattr(root, "parc_task", None)
    if task is None:  # failed on the manager (its arguments, its result's unpickling)
        return "a task", f"failed: {text}"
    return (f"task {task} ({root.parc_call})", f"failed on rank {root.parc_rank} (host "
            f"{root.parc_host}, pid {root.parc_pid}): {text}")


def failed_dependency(call, key, exc):
    """The DependencyError of `call` (a task that will not run), whose argument `key` (a
    position or a keyword) is a future that failed with `exc`."""
    which = argument_name(key)
    root = getattr(exc, "parc_root", exc)
    task, how = _failure_text(root)
    if root is exc:
        reason = f"its {which} is the result of {task}, which {how}"
    else:
        reason = f"its {which} is the result of {exc.parc_call}, which did not run because " \
                 f"{task} {how}"
    error = dependency_error(f"{call} did not run: {reason}", type(root))
    error.parc_call = call
    error.parc_root = root
    error.__cause__ = exc
    return error


class ChunkFailures(Exception):
    """Inputs of a map chunk failed: the manager reports each as its own failure.

    failures: [(offset in the chunk, encoded failure record)]; results: the pickled
    results of the other inputs that ran, in input order, or None."""

    def __init__(self, failures, results):
        super().__init__(failures, results)
        self.failures = failures
        self.results = results

    def __str__(self):
        return f"{len(self.failures)} inputs of a map chunk failed"


UsageError = _core.UsageError
StartupError = _core.StartupError
CancelledError = concurrent.futures.CancelledError

# C++ exception types as Python ones, as pybind11 translates them.
_CPP_TYPES = {
    "std::invalid_argument": ValueError,
    "std::domain_error": ValueError,
    "std::length_error": ValueError,
    "std::out_of_range": IndexError,
    "std::range_error": ValueError,
    "std::overflow_error": OverflowError,
    "std::underflow_error": ArithmeticError,
    "std::bad_alloc": MemoryError,
    "std::runtime_error": RuntimeError,
    "std::logic_error": RuntimeError,
    "std::exception": RuntimeError,
    "parc::TaskTimeout": TaskTimeout,
    "parc::UsageError": UsageError,
}

# Serial mode: the live exceptions of tasks run in this process, by token, so that a
# rebuilt exception carries the closure's real traceback (pdb post-mortem lands there).
_live = {}
_LIVE_LIMIT = 1000


def remember_live(exc):
    token = id(exc)
    if len(_live) >= _LIVE_LIMIT:
        _live.pop(next(iter(_live)))
    _live[token] = exc
    return token


def _rebuild_link(link):
    """The exception of one link, or a RemoteError and why it is one."""
    problem = link.get("problem")
    if link.get("pickled") is not None:
        try:
            exc = pickle.loads(link["pickled"])
            if isinstance(exc, Exception):
                return exc, None
        except Exception as error:  # the class is not importable here, ...
            problem = f"{type(error).__name__}: {error}"
    return RemoteError(link["type"], link["message"], link.get("args", ""),
                       link.get("traceback", "")), problem


def rebuild_python(record):
    links = record["links"]
    rebuilt, problems = zip(*[_rebuild_link(link) for link in links])
    for outer, inner, link in zip(rebuilt, rebuilt[1:], links[1:]):
        if link["how"] == "cause":
            outer.__cause__ = inner
        else:
            outer.__context__ = inner
    live = _live.get(record.get("token"))  # kept: a retry filter may rebuild it first
    if live is not None:
        for exc in rebuilt:
            if live is None:
                break
            exc.__traceback__ = live.__traceback__
            live = live.__cause__ if live.__cause__ is not None else live.__context__
    for exc, problem in zip(rebuilt, problems):
        if problem:
            exc.add_note(f"rebuilt as parc.RemoteError: {problem}")
    return rebuilt[0], record.get("call", ""), record.get("traceback", "")


def _closure_display_name(closure):
    """'py:__main__.simulate' -> 'simulate', 'py:pkg.mod.f' -> 'pkg.mod.f'."""
    if closure.startswith("py:"):
        closure = closure[3:]
        if closure.startswith("__main__."):
            closure = closure[len("__main__."):]
    return closure


def _rebuild_cpp(chain, closure):
    rebuilt = []
    for type_name, message, _ in chain:
        kind = _CPP_TYPES.get(type_name)
        rebuilt.append(kind(message) if kind else RemoteError(type_name, message))
    for outer, inner in zip(rebuilt, rebuilt[1:]):  # throw_with_nested: outer wraps inner
        outer.__cause__ = inner
    return rebuilt[0], f"{_closure_display_name(closure)}(...)", ""


def rebuild(error, index=None):
    """The exception of a failed task, from _core's error tuple."""
    foreign, chain, rank, host, pid, task, closure, attempts = error
    if foreign:
        exc, call, traceback_text = rebuild_python(pickle.loads(foreign))
    else:
        exc, call, traceback_text = _rebuild_cpp(chain, closure)
    where = f"rank {rank} (host {host}, pid {pid}), task {task}: {call}"
    if index is not None:
        where += f", input #{index}"
    if attempts > 1:
        where += f", after {attempts} attempts"
    exc.add_note(where)
    if traceback_text:
        exc.add_note("remote traceback:\n" + traceback_text.rstrip("\n"))
    exc.parc_rank = rank
    exc.parc_task = task
    exc.parc_call = call
    exc.parc_host = host
    exc.parc_pid = pid
    if index is not None:
        exc.parc_index = index
    return exc


def qualified_name(kind):
    return f"{kind.__module__}.{kind.__qualname__}"


# -- where a failure happens: its encoding ------------------------------------------------

_repr = reprlib.Repr()
_repr.maxstring = 60
_repr.maxother = 60


def describe_call(function, args, kwargs):
    """How a call reads in an error and in the flight record: simulate(3, seed=1)."""
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
    link = {"type": qualified_name(type(exc)), "message": str(exc), "how": how,
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


def encode_failure(exc, call, remember):
    """(type name, message, encoded record) of a failed call. `remember` (serial mode)
    keeps the live exception, so that the rebuilt one gets its traceback (pdb lands
    there); its frames keep their callers' locals alive meanwhile."""
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
              "token": remember_live(exc) if remember else None}
    return links[0]["type"], links[0]["message"], pickle.dumps(record, protocol=5)


def rebuild_chunk(error, first_index):
    """A map chunk's failure as its inputs' failures: ([(offset, exception)], pickled
    results of the chunk's other inputs that ran, or None); None when the chunk failed as a whole (a
    timeout, a task that did not decode), which rebuild() reports."""
    foreign, chain, rank, host, pid, task, closure, attempts = error
    if not foreign:
        return None
    links = pickle.loads(foreign)["links"]
    if links[0]["type"] != qualified_name(ChunkFailures) or links[0]["pickled"] is None:
        return None
    chunk = pickle.loads(links[0]["pickled"])
    def index(offset):  # inputs: consecutive from first_index, or listed
        return first_index[offset] if isinstance(first_index, list) else first_index + offset

    members = [(offset, rebuild((record, chain, rank, host, pid, task, closure, attempts),
                                index(offset))) for offset, record in chunk.failures]
    return members, chunk.results


for _public in (DependencyError, ParallelException, RemoteError, TaskTimeout):
    _public.__module__ = "parc"
