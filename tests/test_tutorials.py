"""Every tutorial in docs/tutorials/ runs top to bottom in quick mode, is in the site's nav, and quotes its
full-run figures. Adding a tutorial is dropping a file there and adding one nav line to mkdocs.yml."""

from __future__ import annotations

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
