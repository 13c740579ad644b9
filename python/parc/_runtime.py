"""Start-up, parc.run, rank/size, whether a task runs in this thread, and log lines that
match the C++ core's."""

import atexit
import faulthandler
import logging
import os
import sys
import threading
import time

from . import _closures, _core, _output
from ._errors import StartupError, UsageError

log = logging.getLogger("parc")
_running = False  # inside parc.run's main on rank 0
_stopped = False  # parc.run has returned: the workers are gone
# A task runs in this thread now (managers cannot start inside one). Per thread: serial
# SPMD regions run their ranks on threads of their own. Set by _worker.
_task_thread = threading.local()

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
           "warning": logging.WARNING, "error": logging.ERROR, "off": logging.CRITICAL + 10}


class _CoreFormat(logging.Formatter):
    """[12:00:01.123] [parc rank 2] [warning] message: the C++ core's spdlog pattern."""

    rank = "?"

    def format(self, record):
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        return (f"[{stamp}.{int(record.msecs):03d}] [parc rank {self.rank}] "
                f"[{record.levelname.lower()}] {message}")


def _configure_logging():
    if getattr(log, "_parc_configured", False):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_CoreFormat())
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(_LEVELS.get(os.environ.get("PARC_LOG", "warn").lower(), logging.WARNING))
    log._parc_configured = True


_configure_logging()


def _set_log_rank(rank):
    for handler in log.handlers:
        if isinstance(handler.formatter, _CoreFormat):
            handler.formatter.rank = str(rank)


def start():
    """Starts the runtime once: MPI under a launcher, otherwise serial."""
    if _core.started():
        return
    try:
        _output.prefix_requested()  # a bad PARC_OUTPUT stops the job before MPI starts
        _core.start(sys.argv)
    except StartupError as error:
        if "declare different closures" in str(error):
            error = (f"{error}\nIn Python: apply @parc.closure at module top level, "
                     "unconditionally, in modules that every rank imports before parc.run.")
        rank = os.environ.get("PMI_RANK", "0")
        if rank == "0":
            sys.stderr.write(f"[parc rank {rank}] {error}\n")
        else:
            sys.stderr.write(f"[parc rank {rank}] stopping: the job cannot start "
                             "(rank 0 says why)\n")
        sys.stderr.flush()
        raise SystemExit(2) from None
    _closures.on_start()
    if _core.serial() and not faulthandler.is_enabled():
        # A task that crashes the process shows its Python stack, after parc's line
        # naming the task (the core's handler, installed at start, runs next).
        faulthandler.enable()
    _set_log_rank(_core.rank())
    _output.install(_rank_now)
    atexit.register(_core.finalize)
    log.debug("python package ready: %d closures declared, cloudpickle %s",
              _closures.declared_count(),
              "available" if _closures.cloudpickle is not None else "missing")


def in_task():
    """True while a task runs in this thread."""
    return getattr(_task_thread, "running", False)


def set_in_task(running):
    _task_thread.running = running


def _rank_now():
    # Serially a task's rank is its simulated worker's (as in its error reports).
    return _core.proxy_here() if in_task() else _core.rank()


def rank():
    """This process's rank. Inside a task, the rank of the worker running it: serially,
    the simulated worker's (1 to PARC_SERIAL), as the task's error reports say; outside
    tasks, serially, 0."""
    start()
    return _rank_now()


def size():
    """The number of ranks in the job (1 in serial mode)."""
    start()
    return _core.size()


def serial():
    """True when managers run their tasks in this process (no launcher, or PARC_SERIAL)."""
    start()
    return _core.serial()


def workers():
    """How many workers run tasks: size() - 1, or PARC_SERIAL's simulated ones."""
    start()
    return _core.workers()


def run(main, *args, **kwargs):
    """Rank 0 runs main(*args, **kwargs); the other ranks serve the managers meanwhile
    and then exit. main's exit code is the job's on every rank: when main returns a
    non-zero int, rank 0 exits with it too (as sys.exit(main()) would); when main raises,
    rank 0 raises it and the workers exit with 1. Otherwise parc.run returns main's return
    value on rank 0."""
    global _running
    if _running:  # already inside parc.run (python3 -m parc app.py running parc.run)
        return main(*args, **kwargs)
    start()
    returned = []

    def rank0_main():
        global _running
        _running = True
        _closures.snapshot_globals()  # what the workers' modules hold
        try:
            returned.append(main(*args, **kwargs))
        finally:
            _running = False
        value = returned[0]
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    global _stopped
    try:
        code = _core.run(rank0_main)
    except UsageError as error:
        if "may be called once" in str(error):
            raise UsageError("parc.run may be called once per program") from None
        raise
    finally:
        _stopped = True
    if _core.rank() != 0:
        _core.finalize()
        sys.stdout.flush()
        raise SystemExit(code)
    if code != 0:  # as sys.exit(main()): the job's exit status is main's on every rank
        raise SystemExit(code)
    return returned[0]


def stopped():
    """True once parc.run has returned on this rank: its workers are gone."""
    return _stopped


def check_manager(what):
    start()
    if in_task():
        raise UsageError(f"{what} inside a task: tasks run on workers, which cannot manage "
                         "other workers. Return what the task found and submit the next "
                         "tasks from the manager (rank 0).")
    if _core.rank() != 0 and not _core.serial():
        # Rank 0 would wait forever for this rank to serve: end the job, saying why.
        message = (f"{what} on rank {_core.rank()}: managers run on rank 0, the other "
                   "ranks serve them. Put the program in a main() function and call "
                   "parc.run(main) (or run the script with python3 -m parc app.py).")
        log.error("%s Ending the job.", message)
        sys.stderr.flush()
        time.sleep(0.2)  # lets mpiexec forward the message before the job is torn down
        _core.abort(2)
