"""The Python package imports one way (docs/architecture.md, "The Python package").

Every import in python/parc/*.py counts, those inside functions too, and so do the
modules that parc._core (python/src/*.cpp) would import by name. The graph must have no
cycle, each module belongs to the side that runs it, a side imports only the sides
below it, and the doc shows the arrows as they are. Reads the sources only: no build, no
MPI.
"""

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "python" / "parc"
CORE_SOURCES = REPO / "python" / "src"
ARCHITECTURE = REPO / "docs" / "architecture.md"

# Which side runs each module, as docs/architecture.md tells it.
SIDES = {
    "_core": "core",
    "_codec": "shared", "_errors": "shared", "_cpp": "shared", "_output": "shared",
    "_closures": "shared", "_runtime": "shared", "_futures": "shared",
    "_proxy_owner": "proxy owner",
    "_proxy_caller": "proxy caller",
    "_worker": "worker", "_worker_spmd": "worker",
    "_manager": "manager", "_manager_progress": "manager", "_manager_farm": "manager",
    "_manager_pipeline": "manager", "_manager_spmd": "manager",
    "__init__": "package", "__main__": "package",
    "timeline": "tool",
}
# What each side may import (itself included where listed).
MAY_IMPORT = {
    "core": set(),
    "shared": {"core", "shared"},
    "proxy owner": {"core", "shared"},
    "proxy caller": {"core", "shared", "proxy owner"},
    "worker": {"core", "shared", "proxy caller", "worker"},
    "manager": {"core", "shared", "proxy caller", "manager"},
    "package": {"core", "shared", "proxy owner", "proxy caller", "worker", "manager",
                "package"},
    "tool": set(),
}


def package_modules():
    return sorted(path.stem for path in PACKAGE.glob("*.py"))


def _imported(node, modules):
    """The package's modules that one import statement names."""
    if isinstance(node, ast.Import):
        found = []
        for alias in node.names:
            parts = alias.name.split(".")
            if parts[0] == "parc":
                found.append(parts[1] if len(parts) > 1 else "__init__")
        return found
    if node.level == 0 and not (node.module or "").startswith("parc"):
        return []  # another package
    if node.level > 1:
        raise AssertionError("parc has no subpackages: a relative import above it")
    parts = (node.module or "").split(".")
    if node.level == 0:
        parts = parts[1:]  # from parc.x import ... / from parc import ...
    if parts and parts[0]:
        return [parts[0]]
    # from . import a, b / from parc import a, b: modules, or names of __init__
    return [alias.name if alias.name in modules else "__init__" for alias in node.names]


def import_graph():
    """{module: {module it imports: [line numbers]}}, _core's from the C++ sources."""
    modules = set(package_modules()) | {"_core"}
    graph = {name: {} for name in modules}
    for name in package_modules():
        path = PACKAGE / f"{name}.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _imported(node, modules):
                    if target != name:
                        graph[name].setdefault(target, []).append(node.lineno)
    for source in sorted(CORE_SOURCES.glob("*.[ch]pp")):
        for number, line in enumerate(source.read_text().splitlines(), 1):
            for target in re.findall(r'import\("parc(?:\.(\w+))?', line):
                graph["_core"].setdefault(target or "__init__", []).append(
                    f"{source.name}:{number}")
    return graph


def find_cycle(graph):
    """One cycle as [a, b, ..., a], or None."""
    state = {}  # module -> "open" while on the path, "done" after

    def visit(module, path):
        state[module] = "open"
        path.append(module)
        for target in sorted(graph.get(module, {})):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state:
                cycle = visit(target, path)
                if cycle:
                    return cycle
        path.pop()
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module, [])
            if cycle:
                return cycle
    return None


def describe(graph, cycle):
    return "\n".join(f"  {a} -> {b} (line {', '.join(map(str, graph[a][b]))})"
                     for a, b in zip(cycle, cycle[1:]))


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    cycle = find_cycle(graph)
    assert cycle is None, ("python/parc imports in a cycle (imports inside functions count): "
                           + " -> ".join(cycle) + "\n" + describe(graph, cycle))


def test_core_imports_nothing_of_the_package():
    imported = import_graph()["_core"]
    assert not imported, (
        "parc._core imports package modules by name; register a hook from the package "
        f"instead: {imported}")


def test_every_module_has_a_side():
    unknown = [name for name in package_modules() if name not in SIDES]
    assert not unknown, (f"python/parc/{unknown[0]}.py is on no side: add it to SIDES here "
                         "and to docs/architecture.md")


def test_each_side_imports_only_the_sides_below_it():
    graph = import_graph()
    wrong = []
    for module, targets in sorted(graph.items()):
        side = SIDES.get(module)
        for target, lines in sorted(targets.items()):
            if side is not None and SIDES.get(target) not in MAY_IMPORT[side]:
                wrong.append(f"{module} ({side}) imports {target} ({SIDES.get(target)}), "
                             f"line {lines[0]}")
    assert not wrong, "imports against the layering:\n  " + "\n  ".join(wrong)


def documented_arrows():
    """{module: set of modules} from the arrows block of docs/architecture.md."""
    text = ARCHITECTURE.read_text()
    assert "## The Python package" in text, "docs/architecture.md has no Python package section"
    section = text[text.index("## The Python package"):]
    block = re.search(r"```text\n(.*?)```", section, re.S).group(1)
    arrows = {}
    for line in block.splitlines():
        module, _, targets = line.partition("──►")
        arrows[module.strip()] = set(targets.split()) - {"(nothing)"}
    return arrows


def test_the_architecture_doc_shows_the_real_arrows():
    graph = import_graph()
    documented = documented_arrows()
    wrong = [f"{module}: the doc says {sorted(documented.get(module, ()))}, the code "
             f"imports {sorted(graph.get(module, ()))}"
             for module in sorted(set(graph) | set(documented))
             if documented.get(module) != set(graph.get(module, ()))]
    assert not wrong, "docs/architecture.md's import arrows are out of date:\n  " + \
        "\n  ".join(wrong)


def test_the_checker_finds_a_cycle():
    """The checks above could not pass by finding nothing."""
    assert find_cycle({"a": {"b": [1]}, "b": {"c": [2]}, "c": {"a": [3]}}) == ["a", "b", "c",
                                                                             "a"]
    assert find_cycle({"a": {"b": [1]}, "b": {}}) is None
    tree = ast.parse("def f():\n    from ._farm import Future\n    import parc._spmd\n")
    nodes = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert [_imported(n, {"_farm", "_spmd"}) for n in nodes] == [["_farm"], ["_spmd"]]

