"""The layout of the package: ppgen/ is grouped into rooms whose imports run one way, bottom to top, with no circle.

The imports are read from the sources (every ``import`` statement, those inside functions included, those under
``if TYPE_CHECKING:`` left out), so that a lazy import that runs back up is found as surely as one at the top.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: each room and the rooms it may import, bottom to top (docs/concepts.md, "Where things are").
MAY_IMPORT = {
    "utils": set(),
    "program": {"utils"},
    "objective": {"program", "utils"},
    "models": {"program", "utils"},
    "inference": {"objective", "program", "utils"},
    "run": {"program", "utils"},
    "datasets": {"utils"},
    "queries": {"objective", "run", "program", "utils"},
    "plots": {"queries", "run", "program", "utils"},
    "training": {"plots", "queries", "run", "inference", "models", "objective", "program", "utils"},
    "classifier": {"training", "queries", "program", "utils"},
    "cli": {"ppgen", "plots", "datasets", "training", "queries", "run", "objective", "program", "utils"},
    "ppgen": set(),  # the package's face imports its names on first use, by name (importlib), from every room
}
#: what may stand at the top of ppgen/ besides the rooms: the package's face, ``python -m ppgen``, and two modules
#: that build on a whole fit and belong to no room.
TOP = {"__init__.py", "__main__.py", "plots.py", "classifier.py"}


def source_modules() -> dict[str, Path]:
    """Each installed module's dotted name and its source file, from pyproject.toml's package-dir mapping."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = setuptools.get("package-dir", {})
    modules = {}
    for package in setuptools["packages"]:
        folder = ROOT / mapping.get(package, package.replace(".", "/"))
        for path in folder.glob("*.py"):
            modules[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return modules


def imported(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The ppgen modules that the module ``name`` imports, anywhere in it but under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    hidden = {id(node) for block in ast.walk(tree)
              if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
              for statement in block.body for node in ast.walk(statement)}
    package = name if path.stem == "__init__" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in hidden:
            continue
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[:len(package.split(".")) - node.level + 1], *filter(None, [base])])
            submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules]
            # ``from package import submodule`` imports the submodule; the package's own names import the package
            candidates = submodules + ([base] if len(submodules) < len(node.names) else [])
        else:
            continue
        for candidate in candidates:
            while candidate and candidate not in modules:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name:
                found.add(candidate)
    return found


def room(name: str) -> str:
    parts = name.split(".")
    if len(parts) == 1:
        return "ppgen"
    return "cli" if parts[1] == "__main__" else parts[1]


def import_graph() -> dict[str, set[str]]:
    modules = source_modules()
    return {name: imported(name, path, modules) for name, path in modules.items()}


def test_every_room_is_known_and_the_top_holds_only_the_rooms():
    top = ROOT / "ppgen"
    assert {p.name for p in top.glob("*.py")} <= TOP
    assert {room(name) for name in source_modules()} == set(MAY_IMPORT)
    assert {p.name for p in top.iterdir() if (p / "__init__.py").exists()} == set(MAY_IMPORT) - {
        "models", "inference", "plots", "classifier", "ppgen"}


def test_imports_run_one_way_from_room_to_room():
    wrong = sorted(f"{name} imports {target}" for name, targets in import_graph().items() for target in targets
                   if room(target) != room(name) and room(target) not in MAY_IMPORT[room(name)])
    assert wrong == []


def test_no_module_imports_one_that_imports_it_back():
    graph = import_graph()
    circles = []
    for start in graph:  # a path from start back to start, through any number of modules
        stack, seen = [(start, (start,))], set()
        while stack:
            name, path = stack.pop()
            for target in graph[name]:
                if target == start:
                    circles.append(" -> ".join((*path, start)))
                elif target not in seen:
                    seen.add(target)
                    stack.append((target, (*path, target)))
    assert circles == []


def test_the_graph_sees_lazy_imports_and_leaves_out_type_checking_ones():
    graph = import_graph()
    assert "ppgen.training.registry" in graph["ppgen.training.fitting"]  # imported inside fit()
    assert "ppgen.program.structure" not in graph["ppgen.program.pointwise"]  # under TYPE_CHECKING only
    assert "ppgen.program.structure" in graph["ppgen.objective.bounds"]
