"""Every tutorial in docs/tutorials/ runs top to bottom in quick mode, is in the site's nav, and quotes its
full-run figures; where docs/tools/figures.py lists them, a full run (slow) gives each within the tolerance the text
states. Adding a tutorial is dropping a file there and adding one nav line to mkdocs.yml."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "docs" / "tutorials").glob("*.py"))


def test_there_are_tutorials():
    assert TUTORIALS


@pytest.mark.parametrize("tutorial", TUTORIALS, ids=[t.stem for t in TUTORIALS])
def test_tutorial_runs_in_quick_mode(tutorial, tmp_path):
    # one thread: on a shared machine, torch threads that wait for each other cost more than they give
    env = {**os.environ, "PPGEN_QUICK": "1", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(tutorial)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"{tutorial.name} failed in quick mode:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"


@pytest.mark.parametrize("tutorial", TUTORIALS, ids=[t.stem for t in TUTORIALS])
def test_tutorial_is_in_the_nav_and_quotes_its_full_run(tutorial):
    text = tutorial.read_text()
    assert text.startswith("# %% [markdown]\n# # "), f"{tutorial.name}: open with a markdown cell and a title"
    assert f"tutorials/{tutorial.name}" in (ROOT / "mkdocs.yml").read_text(), \
        f"{tutorial.name} is not in the nav of mkdocs.yml"
    assert "Full-run figures" in text, f"{tutorial.name} does not state its measured full-run figures"
    assert f"python docs/tutorials/{tutorial.name}" in text, f"{tutorial.name} does not say how to reproduce them"
    assert not re.search(r"FULL_(FIGURES|TIME)", text), f"{tutorial.name} still has a placeholder for its figures"
    assert 'os.environ.get("PPGEN_QUICK") == "1"' in text, f"{tutorial.name} has no quick mode"


def load_figures_tool():
    """docs/tools/figures.py, which is not a package."""
    spec = importlib.util.spec_from_file_location("docs_tools_figures", ROOT / "docs" / "tools" / "figures.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


FIGURES = load_figures_tool()
CHECKED = [tutorial for tutorial in TUTORIALS if tutorial.name in FIGURES.QUOTED]


def test_every_checked_figure_is_quoted_once_with_its_tolerance():
    assert set(FIGURES.QUOTED) <= {tutorial.name for tutorial in TUTORIALS}, "QUOTED names a tutorial not there"
    for tutorial in CHECKED:
        text = tutorial.read_text()
        assert "bitwise" in text, f"{tutorial.name} does not say where its figures repeat bitwise"
        for figure in FIGURES.QUOTED[tutorial.name]:
            figure.quoted(text)  # raises unless the text quotes it exactly once
            assert f"±{figure.tolerance:g}" in text, f"{tutorial.name} does not state the tolerance of {figure.value}"


@pytest.mark.slow
@pytest.mark.parametrize("tutorial", CHECKED, ids=[t.stem for t in CHECKED])
def test_full_run_gives_the_quoted_figures_within_their_tolerance(tutorial, tmp_path):
    # a full run, one thread as the figures were measured (own_model: 15 s of CPU time, inference: about a minute)
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    env.pop("PPGEN_QUICK", None)
    done = subprocess.run([sys.executable, str(ROOT / "docs" / "tools" / "figures.py"), str(tutorial)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=3600)
    assert done.returncode in (0, 1), f"{tutorial.name} failed in a full run:\n{done.stderr[-5000:]}"
    outside = [row for row in json.loads(done.stdout) if not row["within"]]
    assert not outside, f"{tutorial.name}: figures outside their tolerance: {outside}"
