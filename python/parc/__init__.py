"""parc: parallel closures, task farms and parallel exceptions over MPI.

    import parc

    @parc.closure
    def simulate(seed): ...

    def main():
        with parc.TaskFarm() as farm:
            print(sum(farm.map(simulate, range(1000))))

    if __name__ == "__main__":
        parc.run(main)

Run it with `mpiexec.mpich -n 4 python3 app.py`, or serially with `python3 app.py`.
"""

from . import _core, _proxy_owner, _worker
from ._core import __version__
from ._closures import closure, closure_table, load_library
from ._cpp import cpp_closure
from ._errors import (CancelledError, DependencyError, ParallelException, RemoteError,
                      StartupError, TaskTimeout, UsageError)
from ._futures import ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION, Future, as_completed, wait
from ._manager_farm import TaskFarm
from ._manager_pipeline import Pipeline, Stage
from ._manager_spmd import Spmd, SpmdRun
from ._proxy_caller import Proxy, is_local, live_objects
from ._runtime import rank, run, serial, size, workers
from ._worker_spmd import MAX, MIN, PROD, SUM, Context

# _core calls back into the package only through these: it imports none of its modules.
_core.register_worker(execute=_worker.execute)
_core.register_proxy_owner(build=_proxy_owner.build, serve=_proxy_owner.serve,
                           describe=_proxy_owner.describe_bytes,
                           raw_layout=_proxy_owner.raw_layout)

__all__ = [
    "__version__",
    "ALL_COMPLETED", "CancelledError", "Context", "DependencyError", "MAX", "MIN", "PROD", "SUM", "Spmd",
    "SpmdRun", "FIRST_COMPLETED", "FIRST_EXCEPTION", "Future",
    "ParallelException", "Pipeline", "Proxy", "RemoteError", "Stage", "StartupError", "TaskFarm",
    "TaskTimeout",
    "UsageError", "as_completed", "closure", "closure_table", "cpp_closure", "is_local",
    "live_objects", "load_library",
    "rank", "run", "serial", "size", "wait", "workers",
]
