"""MkDocs hook: lay out the package tree as it is installed, for mkdocstrings to read.

``ppgen.models`` and ``ppgen.inference`` live in the top-level folders ``models/`` and ``inference/``
(a package-dir mapping in pyproject.toml), so a static reader that looks for ``ppgen/models/`` finds
nothing. This hook builds ``build/api-tree/ppgen/`` from symbolic links that follow the mapping, and
mkdocstrings reads the sources from there: every subpackage listed in pyproject.toml appears in the
API reference without an edit here.

mkdocstrings renders the classes, functions and constants in a module's ``__all__``, but not the modules
there (``ppgen.datasets``); the hook appends a ``::: module`` block for each of those to the page that documents
the package, so that a module added to ``__all__`` is documented without an edit either.
"""

from __future__ import annotations

import importlib
import re
import shutil
import tomllib
import types
from pathlib import Path
from typing import Any

from mkdocs.plugins import event_priority

ROOT = Path(__file__).resolve().parents[2]
TREE = ROOT / "build" / "api-tree"


def package_dirs(root: Path = ROOT) -> dict[str, Path]:
    """Each installed package's dotted name and its source folder, from pyproject.toml's package-dir mapping."""
    setuptools = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = setuptools.get("package-dir", {})
    return {name: root / mapping.get(name, name.replace(".", "/")) for name in setuptools["packages"]}


def build_tree(root: Path = ROOT, tree: Path = TREE) -> Path:
    """Make ``tree`` hold each package of ``root`` under its dotted name, its files linked to the sources.

    Returns:
        ``tree``, the folder to give the documentation tools as a search path.
    """
    if tree.exists():
        shutil.rmtree(tree)
    for name, source in sorted(package_dirs(root).items()):
        target = tree.joinpath(*name.split("."))
        target.mkdir(parents=True, exist_ok=True)
        for path in source.iterdir():
            if path.name != "__pycache__" and (path.suffix == ".py" or path.is_dir()):
                link = target / path.name
                if not link.exists():  # a mapped subpackage was laid out already
                    link.symlink_to(path.resolve(), target_is_directory=path.is_dir())
    return tree


@event_priority(100)  # before mkdocstrings sets up its search paths, which keeps only existing folders
def on_config(config: Any) -> Any:
    """Build the tree before mkdocstrings looks for it."""
    build_tree()
    return config


#: A mkdocstrings block at the start of a line: ``::: dotted.name``.
BLOCK = re.compile(r"^::: ([\w.]+)[ \t]*$", re.M)


def exported_modules(name: str) -> list[str]:
    """The dotted names of the modules in the ``__all__`` of the module ``name``."""
    module = importlib.import_module(name)
    return [f"{name}.{member}" for member in getattr(module, "__all__", [])
            if isinstance(getattr(module, member, None), types.ModuleType)]


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Append a block for each module that a documented package exports in its ``__all__``."""
    documented = BLOCK.findall(markdown)
    extra = [module for name in documented if name.startswith("ppgen") for module in exported_modules(name)
             if module not in documented]
    return markdown + "".join(f"\n::: {module}\n" for module in extra)
