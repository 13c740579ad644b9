"""Whole-line stdout and stderr on every rank of an MPI job, optionally prefixed with the rank.

mpiexec merges the ranks' output streams as the bytes arrive. Python block-buffers a pipe,
so a rank's 8 KiB flush can end mid-line and another rank's text lands inside that line.
Here each stream only ever writes complete lines, each batch in one write() of at most
PIPE_BUF bytes (atomic on a pipe), so lines from different ranks never mix.
"""

import atexit
import io
import os
import select
import sys
import threading

from . import _core
from ._errors import StartupError

_BATCH = getattr(select, "PIPE_BUF", 4096)  # writes up to this size are atomic on a pipe


def prefix_requested():
    """PARC_OUTPUT=prefix: every line starts with `[rank N] `; unset or empty: no prefix."""
    value = os.environ.get("PARC_OUTPUT", "")
    if value in ("", "plain"):
        return False
    if value == "prefix":
        return True
    raise StartupError(f"parc: PARC_OUTPUT={value} is not an output mode; set it to prefix "
                       "(each line of output starts with its rank: [rank 2] ...), plain, or "
                       "unset it")


_rank_now = None  # the rank a line is tagged with: given by install()


class LineWriter(io.TextIOBase):
    """A text stream that writes whole lines to `stream`'s file descriptor. Text after
    the last newline waits for its newline, the end of the task or the process's exit:
    flush() does not send half a line, which another rank's line could then join."""

    def __init__(self, stream, prefix):
        self._stream = stream
        self._fd = stream.fileno()
        self._prefix = prefix
        self._pending = {}  # thread id -> its partial line: threads' lines do not mix
        self._lock = threading.Lock()
        stream.flush()  # what was written before goes first

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        thread = threading.get_ident()
        with self._lock:
            pending = self._pending.pop(thread, "") + text
            end = pending.rfind("\n")
            if end >= 0:
                self._emit(pending[:end].split("\n"))
                pending = pending[end + 1:]
            if pending:
                self._pending[thread] = pending
        return len(text)

    @property
    def encoding(self):
        return self._stream.encoding

    @property
    def errors(self):
        return self._stream.errors

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def _emit(self, lines):
        tag = f"[rank {_rank_now()}] " if self._prefix else ""
        encoding = self._stream.encoding or "utf-8"
        errors = self._stream.errors or "strict"
        batch = b""
        for line in lines:
            data = f"{tag}{line}\n".encode(encoding, errors)
            if batch and len(batch) + len(data) > _BATCH:
                self._write_all(batch)
                batch = b""
            batch += data
        if batch:
            self._write_all(batch)

    def _write_all(self, data):
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]

    def flush(self):
        pass  # whole lines are already written; a partial one waits for its newline

    def close_pending(self, every_thread=False):
        """At the end of a task (this thread's) and at exit (every thread's): a partial
        line goes out as a line of its own."""
        with self._lock:
            if every_thread:
                pending, self._pending = list(self._pending.values()), {}
            else:
                pending = [self._pending.pop(threading.get_ident(), "")]
            lines = [line for line in pending if line]
            if lines:
                self._emit(lines)

    @property
    def raw_stream(self):
        """The wrapped stream, for a progress bar that redraws its line."""
        return self._stream

    def fileno(self):
        return self._fd

    def isatty(self):
        return self._stream.isatty()

    def writable(self):
        return True

    def readable(self):
        return False

    def __getattr__(self, name):  # encoding, errors, buffer, ...: the wrapped stream's
        return getattr(self._stream, name)


_installed = []


def end_task():
    """A task's last partial line ends with the task: the next task starts a new line."""
    for writer in _installed:
        writer.close_pending()


def install(rank_now):
    """Called once at start-up, after MPI: whole lines on every rank of a job of several
    ranks; serially only when PARC_OUTPUT=prefix asks for rank prefixes, which
    rank_now() gives."""
    global _rank_now
    _rank_now = rank_now
    prefix = prefix_requested()
    if _core.size() == 1 and not prefix:
        return
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if isinstance(stream, LineWriter) or stream is None:
            continue
        try:
            stream.fileno()
        except (AttributeError, OSError, ValueError):
            continue  # not a file (captured by a test harness): leave it alone
        writer = LineWriter(stream, prefix)
        setattr(sys, name, writer)
        _installed.append(writer)
        atexit.register(writer.close_pending, every_thread=True)
