"""parc.Spmd: one closure on every worker of a set, with collectives among them.

    def kernel(ctx, n):
        part = compute(ctx.rank, ctx.size, n)
        return ctx.allreduce(part)

    totals = parc.Spmd().run(kernel, 1000)     # one result per region rank

A failure on one rank releases the others, even those waiting in a collective or a
receive (they raise parc.CancelledError inside the region), and run() raises one
parc.ParallelException holding the real failures only. The manager's side (rank 0);
the closure's ctx is _worker_spmd's Context.
"""

import time

from . import _closures, _codec, _core, _errors, _runtime
from ._cpp import CppClosure
from ._errors import ParallelException


class SpmdRun:
    """A region started with Spmd.submit; result() waits for it."""

    def __init__(self, region, name, decode=_codec.decode):
        self._region = region
        self._name = name
        self._decode = decode
        self._results = {}
        self._errors = {}
        self._cancelled = set()
        self._finished = False

    @property
    def ranks(self):
        """The world ranks of the region: region rank r is ranks[r]."""
        return list(self._region.ranks)

    def _collect(self):
        results, errors, cancelled = self._region.outcomes()
        for index, buffer in results:
            self._results[index] = buffer
        for index, error in errors:
            if error[6] == "parc.python_call":  # a callable sent by value: name it
                error = (*error[:6], f"py:{self._name}", *error[7:])
            exc = _errors.rebuild(error)
            exc.add_note(f"SPMD region rank {index} of {len(self._region.ranks)} "
                         f"(world rank {self._region.ranks[index]})")
            exc.parc_region_rank = index
            self._errors[index] = exc
        self._cancelled.update(cancelled)

    def done(self):
        if not self._finished:
            self._finished = self._region.wait(0)
        return self._finished

    def result(self, timeout=None):
        """Per-rank results in region-rank order. Raises parc.ParallelException with each
        failed rank's own exception (ranks released because another failed are not in
        it), TaskTimeout's when the region ran out of time, or TimeoutError when
        `timeout` seconds pass first (the region keeps running)."""
        if not self._finished:
            self._finished = self._region.wait(-1.0 if timeout is None else float(timeout))
        self._collect()
        if not self._finished:
            raise TimeoutError(f"parc: the SPMD region of {self._name} did not finish within "
                               f"{timeout} s")
        if self._errors:
            errors = [self._errors[i] for i in sorted(self._errors)]
            group = ParallelException(
                f"{len(errors)} of {len(self._region.ranks)} ranks of the SPMD region of "
                f"{self._name} failed", errors)
            raise group.with_traceback(errors[0].__traceback__)
        if self._cancelled:
            raise _errors.CancelledError(f"parc: the SPMD region of {self._name} was cancelled")
        values = []
        for index in range(len(self._region.ranks)):
            try:
                values.append(self._decode(memoryview(self._results[index])))
            except Exception as error:
                error.add_note(f"parc: the result of SPMD region rank {index} could not be "
                               "unpickled on the manager")
                raise
        return values

    def cancel(self):
        """Releases the region's ranks: they raise CancelledError at their next parc call."""
        self._region.cancel("the manager cancelled the region")


class Spmd:
    """An SPMD manager over `ranks` (world ranks of workers; default: every worker).

    run(fn, *args) calls fn(ctx, *args) on every rank of the region and returns the
    results in region-rank order. timeout= (seconds) bounds the whole region."""

    def __init__(self, ranks=None, timeout=None):
        if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
            raise ValueError(f"parc.Spmd: timeout must be a number of seconds > 0 or None, "
                             f"got {timeout!r}")
        if ranks is not None:
            ranks = list(ranks)
            if not ranks or not all(isinstance(r, int) for r in ranks):
                raise ValueError(f"parc.Spmd: ranks must be a non-empty list of worker ranks, "
                                 f"got {ranks!r}")
        _runtime.check_manager("parc.Spmd")
        self._ranks = ranks or []
        self._timeout = float(timeout or 0)

    @property
    def ranks(self):
        return list(self._ranks) if self._ranks else _core.worker_ranks()

    def submit(self, fn, /, *args, **kwargs):
        """Starts fn(ctx, *args, **kwargs) on every rank of the region; returns an
        SpmdRun at once (regions on disjoint ranks, and farms, run meanwhile). fn may be
        a C++ SPMD closure, parc.cpp_closure(name)."""
        name = getattr(fn, "__qualname__", None) or repr(fn)
        if isinstance(fn, CppClosure):  # its arguments in the C++ archive layout
            payload = fn.encode(args, kwargs, in_region=True)
            return SpmdRun(_core.Region(fn.resolve()[0], self._ranks, payload, self._timeout),
                           name, fn.decode)
        closure, prefix = _closures.resolve(fn)
        flags = prefix[0] | _codec.FLAG_SPMD
        try:
            if kwargs:
                payload = [bytes([flags | _codec.FLAG_KWARGS]), prefix[1:],
                           *_codec.encode((args, kwargs))]
            else:
                payload = [bytes([flags]), prefix[1:], *_codec.encode(args)]
        except Exception as error:
            raise TypeError(f"parc: the arguments of the SPMD region cannot be pickled: "
                            f"{error}") from error
        return SpmdRun(_core.Region(closure, self._ranks, payload, self._timeout), name)

    def run(self, fn, /, *args, **kwargs):
        """fn(ctx, *args, **kwargs) on every rank of the region; the results in
        region-rank order."""
        run = self.submit(fn, *args, **kwargs)
        try:
            return run.result()
        except KeyboardInterrupt:
            run.cancel()
            deadline = time.monotonic() + 5
            while not run.done() and time.monotonic() < deadline:
                time.sleep(0.01)
            raise
