"""C++ closures (PARC_CLOSURE in a library loaded with parc.load_library) from Python:
farm tasks, and SPMD closures (first parameter parc::SpmdContext&) for parc.Spmd.

Arguments are encoded straight into the C++ archive's layout, from the closure's wire
signature (closures/include/parc/closures/wire_signature.hpp): scalars, std::string and
std::vector of scalars. A C++ exception comes back as the matching Python exception.
"""

import struct

from . import _core
from ._errors import UsageError

try:
    import numpy
except ImportError:
    numpy = None

_COUNT = struct.Struct("<Q")
_SCALARS = "?bBhHiIqQfd"


def _parse(codes):
    parsed, i = [], 0
    while i < len(codes):
        if codes[i] == "[":
            parsed.append(codes[i:i + 2])
            i += 2
        else:
            parsed.append(codes[i])
            i += 1
    return parsed


class CppClosure:
    """A handle on a C++ closure; submit it to a farm like a Python function."""

    def __init__(self, name):
        self.__name__ = self.__qualname__ = name
        self._resolved = None
        self.spmd = False  # its first parameter is parc::SpmdContext& (known once resolved)

    def __repr__(self):
        return f"parc.cpp_closure({self.__name__!r})"

    def __call__(self, *args, **kwargs):
        raise UsageError(f"{self!r} runs on the workers: submit it to a TaskFarm")

    def resolve(self):
        if self._resolved is None:
            table = _core.closure_table()
            if self.__name__ not in table:
                known = sorted(n for n, entry in table.items() if entry[2])
                raise UsageError(
                    f"parc.cpp_closure: no C++ closure named {self.__name__!r} on this rank "
                    f"(declared: {', '.join(known) or 'none'}). Declare it with "
                    "PARC_CLOSURE(name) in a library loaded with parc.load_library(path) on "
                    "every rank before parc.run.")
            closure_id, signature, wire = table[self.__name__]
            if not wire:
                raise UsageError(f"parc.cpp_closure: {self.__name__!r} is not a C++ closure")
            parameters, result = wire.split("->")
            self.spmd = parameters.startswith("@")
            self._resolved = (closure_id, signature, _parse(parameters.lstrip("@")), result)
        return self._resolved

    def encode(self, args, kwargs, in_region=False):
        closure_id, signature, parameters, _ = self.resolve()
        if self.spmd and not in_region:
            raise UsageError(f"{self.__name__} ({signature}) takes a parc::SpmdContext&: run "
                             "it in an SPMD region, parc.Spmd().run(closure, ...)")
        if in_region and not self.spmd:
            raise UsageError(f"{self.__name__} ({signature}) does not take a "
                             "parc::SpmdContext& first, so it cannot run in an SPMD region: "
                             "submit it to a TaskFarm")
        if kwargs:
            raise TypeError(f"{self.__name__} is a C++ closure ({signature}): it takes no "
                            "keyword arguments")
        if len(args) != len(parameters):
            raise TypeError(f"{self.__name__} ({signature}) takes {len(parameters)} "
                            f"arguments, got {len(args)}")
        parts = []
        for position, (code, value) in enumerate(zip(parameters, args), 1):
            try:
                parts.append(_encode_value(code, value))
            except (TypeError, ValueError, struct.error, OverflowError) as error:
                raise TypeError(f"argument {position} of {self.__name__} ({signature}): "
                                f"{error}") from error
        return parts

    def decode(self, view):
        result = self.resolve()[3]
        return _decode_value(result, view)


def _encode_value(code, value):
    if code == "!":
        raise TypeError("its C++ type is not callable from Python (only numbers, bool, "
                        "std::string and std::vector of numbers are)")
    if code == "s":
        data = value.encode() if isinstance(value, str) else bytes(value)
        return _COUNT.pack(len(data)) + data
    if code.startswith("["):
        element = code[1]
        if numpy is not None:
            array = numpy.ascontiguousarray(value, dtype=numpy.dtype(element).newbyteorder("<"))
            if array.ndim != 1:
                raise ValueError(f"expected a 1-d sequence, got shape {array.shape}")
            return _COUNT.pack(array.size) + array.tobytes()
        values = list(value)
        return _COUNT.pack(len(values)) + struct.pack(f"<{len(values)}{element}", *values)
    if code in "fd":
        value = float(value)
    elif code != "?":
        value = int(value) if not isinstance(value, bool) else value
    return struct.pack("<" + code, value)


def _decode_value(code, view):
    if code == "v":
        return None
    if code == "s":
        (length,) = _COUNT.unpack_from(view, 0)
        return bytes(view[8:8 + length]).decode(errors="replace")
    if code.startswith("["):
        (count,) = _COUNT.unpack_from(view, 0)
        if numpy is not None:
            return numpy.frombuffer(view, dtype=numpy.dtype(code[1]).newbyteorder("<"),
                                    count=count, offset=8)
        return list(struct.unpack_from(f"<{count}{code[1]}", view, 8))
    return struct.unpack_from("<" + code, view, 0)[0]


def cpp_closure(name):
    """A handle on the C++ closure declared as PARC_CLOSURE(name)."""
    if not isinstance(name, str):
        raise TypeError(f"parc.cpp_closure takes the closure's name, got {name!r}")
    return CppClosure(name)
