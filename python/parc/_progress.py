"""Progress bars for long maps: tqdm when installed, a plain stderr bar otherwise."""

import sys
import time

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


def bar(total, requested, name):
    """A bar with update(n) and close(), or None. requested=None: automatic (stderr is
    a terminal and the map is long or of unknown length)."""
    if requested is None:
        requested = sys.stderr.isatty() and (total is None or total >= LONG)
    if not requested:
        return None
    if tqdm is not None:
        return tqdm.tqdm(total=total, desc=f"parc {name}", file=sys.stderr, unit="task")
    return PlainBar(total, name)


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
