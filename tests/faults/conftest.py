"""The fault suites reuse the launch fixtures of tests/python."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from conftest import *  # noqa: E402,F401,F403
