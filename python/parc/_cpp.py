"""C++ closures (PARC_CLOSURE in a library loaded with parc.load_library) from Python."""

from ._errors import UsageError


def cpp_closure(name):
    raise UsageError("parc.cpp_closure is not available yet")
