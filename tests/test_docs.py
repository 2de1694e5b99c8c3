"""Every Python example in the README and the docs runs as written."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "docs" / "reference").glob("*.md"))]
EXAMPLES = [(page, i, code) for page in PAGES
            for i, code in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), re.S))]


@pytest.mark.parametrize("page, index, code", EXAMPLES,
                         ids=[f"{page.relative_to(ROOT)}[{i}]" for page, i, _ in EXAMPLES])
def test_example_runs(page, index, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    exec(compile(code, f"{page.name}[{index}]", "exec"), {"__name__": "__example__"})


def test_the_readme_shows_the_two_set_up_commands():
    readme = (ROOT / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("##", 1)[0]
    commands = re.findall(r"^make (\w+)", quick_start, re.M)
    assert commands == ["demo", "test"]


def zoo_programs() -> list[str]:
    """The zoo's models: the names in ppgen.models.__all__ that are Pyro programs (the critics are networks)."""
    from ppgen import models

    return [name for name in models.__all__ if callable(getattr(getattr(models, name), "model", None))]


@pytest.mark.parametrize("page", ["README.md", "docs/index.md"])
def test_the_opening_counts_the_zoo_and_the_tutorials_as_they_are(page):
    text = (ROOT / page).read_text()
    opening = text.split("\n## ", 1)[0]
    programs, tutorials = zoo_programs(), sorted((ROOT / "docs" / "tutorials").glob("*.py"))
    assert f"{len(programs)} models" in opening, f"{page}: the opening does not say '{len(programs)} models'"
    missing = [name for name in programs if f"`{name}`" not in opening]
    assert not missing, f"{page}: the opening does not name {missing}"
    assert f"{len(tutorials)} tutorials" in text, f"{page} does not say '{len(tutorials)} tutorials'"
    for tutorial in tutorials:
        assert f"tutorials/{tutorial.name}" in text, f"{page} does not link {tutorial.name}"


def test_the_readme_zoo_table_has_every_model():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## The model zoo", 1)[1].split("\n## ", 1)[0]
    missing = [name for name in zoo_programs() if f"`models.{name}(" not in table]
    assert not missing, f"the README's zoo table lacks {missing}"


def test_the_readme_states_how_long_each_set_up_command_takes():
    quick_start = (ROOT / "README.md").read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    for command in ("make demo", "make test"):
        assert re.search(rf"`{command}` after it:[^;]*?\d+(\.\d+)? (s|min) of CPU time", quick_start), \
            f"no measured time for `{command}`"
