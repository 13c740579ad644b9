"""Checks the C++ modules' boundaries (docs/architecture.md, "Modules") on the source tree:

- a module's files include parc headers only of itself and of the modules it may use;
- <mpi.h> appears only in comm's sources (comm/src), never in a header anyone installs;
- an installed header (a module's include/parc/<module>/) includes no private header
  ("..." includes of src/ files) and no header of a module that is not installed.

Usage: check_modules.py SOURCE_DIR. Exits 1 and names every offending include.
"""

import pathlib
import re
import sys

# What each module may include besides itself; keep in step with docs/architecture.md.
USES = {
    "exceptions": set(),
    "monitor": set(),
    "comm": {"exceptions"},
    "proxies": {"comm", "exceptions", "monitor"},
    "closures": {"comm", "exceptions"},
    "managers": {"proxies", "closures", "comm", "exceptions", "monitor"},
    "python": {"managers", "proxies", "closures", "comm", "exceptions", "monitor"},
}
# Modules whose headers are not installed (internal).
NOT_INSTALLED = {"monitor"}

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.MULTILINE)


def module_files(root, module):
    folder = root / module
    for path in sorted(folder.rglob("*")):
        if path.suffix in {".hpp", ".cpp", ".h", ".ipp"} and path.is_file():
            yield path


def main():
    root = pathlib.Path(sys.argv[1]).resolve()
    problems = []
    for module, uses in USES.items():
        allowed = uses | {module}
        installed_root = root / module / "include"
        for path in module_files(root, module):
            text = path.read_text(encoding="utf-8", errors="replace")
            relative = path.relative_to(root)
            installed = (installed_root in path.parents and module not in NOT_INSTALLED)
            for kind, name in INCLUDE.findall(text):
                if name == "mpi.h" and not (module == "comm" and "src" in relative.parts):
                    problems.append(f"{relative}: includes <mpi.h>; only comm/src may (MPI is "
                                    "comm's private dependency)")
                match = re.match(r"parc/([a-z_]+)/", name)
                if kind == "<" and match:
                    used = match.group(1)
                    if used in USES and used not in allowed:
                        problems.append(f"{relative}: includes <{name}>, but {module} may use only "
                                        f"{', '.join(sorted(allowed))}")
                    if installed and used in NOT_INSTALLED:
                        problems.append(f"{relative}: an installed header includes <{name}>, "
                                        f"which is not installed")
                if installed and kind == '"':
                    problems.append(f'{relative}: an installed header includes "{name}" '
                                    "(a private header)")
    if problems:
        print("module boundaries crossed:\n  " + "\n  ".join(problems))
        return 1
    print(f"module boundaries hold ({', '.join(USES)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
