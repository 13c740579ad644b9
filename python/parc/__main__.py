"""python3 -m parc app.py [args]: runs app.py under parc.

Rank 0 (or the only process) runs app.py as __main__. Under a launcher, the other
ranks import it as __mp_main__ (so its closures and classes exist there, and its
`if __name__ == "__main__":` block does not run) and serve rank 0's managers.
"""

import os
import runpy
import sys


def main():
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    script = sys.argv[1]
    if not os.path.exists(script):
        print(f"python3 -m parc: no such script: {script}", file=sys.stderr)
        return 2
    sys.argv = sys.argv[1:]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    rank = int(os.environ.get("PMI_RANK", os.environ.get("PARC_RANK", "0")))
    import parc
    if rank == 0:
        runpy.run_path(script, run_name="__main__")
        parc.rank()  # the workers wait for the runtime even if the script never used it
        return 0
    import types
    module = types.ModuleType("__mp_main__")
    module.__file__ = os.path.abspath(script)
    sys.modules["__mp_main__"] = module
    sys.modules["__main__"] = module
    with open(script) as source:
        exec(compile(source.read(), script, "exec"), module.__dict__)
    parc.run(lambda: 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
