"""Progress bars for long maps on the manager: tqdm when installed, a plain stderr bar
otherwise."""

import os
import sys
import time

from ._errors import UsageError

try:
    import tqdm
except ImportError:
    tqdm = None

LONG = 1000  # inputs from which a map counts as long


def length_of(iterables):
    try:
        return min(len(iterable) for iterable in iterables)
    except TypeError:  # a generator: unknown
        return None


def _launcher_on_a_terminal():
    """Under mpiexec.mpich rank 0's stderr is a pipe to hydra_pmi_proxy, whose parent,
    mpiexec, writes to the user's terminal: True when the proxy's or mpiexec's stderr (on
    this host) is one."""
    if "PMI_RANK" not in os.environ:
        return False
    pid = os.getpid()
    for _ in range(2):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                pid = int(stat.read().rsplit(")", 1)[1].split()[1])
            target = os.readlink(f"/proc/{pid}/fd/2")
        except (OSError, ValueError, IndexError):
            return False
        if target.startswith(("/dev/pts/", "/dev/tty")):
            return True
    return False


def automatic():
    """Whether maps show a bar by default: PARC_PROGRESS=1 or 0 says; otherwise when
    stderr is a terminal, or the launcher's is (mpiexec.mpich on this host)."""
    value = os.environ.get("PARC_PROGRESS", "")
    if value in ("0", "1"):
        return value == "1"
    if value:
        raise UsageError(f"parc: PARC_PROGRESS={value} is not 0 or 1; set it to 1 to show "
                         "progress bars for long maps, 0 to never show them, or unset it "
                         "to show them when stderr (or mpiexec's) is a terminal")
    return sys.stderr.isatty() or _launcher_on_a_terminal()


def bar(total, requested, name):
    """A bar with update(n) and close(), or None. requested=None: automatic (see
    automatic(), and the map is long or of unknown length)."""
    if requested is None:
        requested = (total is None or total >= LONG) and automatic()
    if not requested:
        return None
    # The bar redraws its line with \r: it bypasses the whole-line writer (_output).
    stream = getattr(sys.stderr, "raw_stream", sys.stderr)
    if tqdm is not None:
        return tqdm.tqdm(total=total, desc=f"parc {name}", file=stream, unit="task")
    return PlainBar(total, name, stream)


class PlainBar:
    """[#########...........]  45% 450/1000  parc simulate   at most 10 redraws a second"""

    WIDTH = 30

    def __init__(self, total, name, stream=None):
        self.total, self.name, self.done = total, name, 0
        self.stream = stream or sys.stderr
        self.drawn_at = 0.0

    def update(self, count=1):
        self.done += count
        now = time.monotonic()
        if now - self.drawn_at >= 0.1 or self.done == self.total:
            self.drawn_at = now
            self.draw()

    def draw(self):
        if self.total:
            filled = self.WIDTH * self.done // self.total
            line = (f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] "
                    f"{100 * self.done // self.total:3d}% {self.done}/{self.total}")
        else:
            line = f"{self.done} tasks"
        self.stream.write(f"\r{line}  parc {self.name}")
        self.stream.flush()

    def close(self):
        self.draw()
        self.stream.write("\n")
        self.stream.flush()
