"""The fault suites reuse tests/python's fixtures and helpers: `from conftest import ...`
works here as it does there. That file is loaded under a name of its own, since pytest
already holds this one as `conftest`."""

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "parc_python_conftest", Path(__file__).resolve().parents[1] / "python" / "conftest.py")
_shared = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _shared
_spec.loader.exec_module(_shared)
globals().update({name: value for name, value in vars(_shared).items()
                  if not name.startswith("__")})
