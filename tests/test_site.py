"""The documentation site: it builds with --strict, its links hold, it loads nothing from another host, the API
reference covers every public name, and the README's pictures come from the demo as the code makes it now."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
PUBLIC_MODULES = {"ppgen": "reference/ppgen", "ppgen.models": "reference/models",
                  "ppgen.inference": "reference/inference"}


def load_tool(name: str):
    """A module of docs/tools/, which is not a package."""
    spec = importlib.util.spec_from_file_location(f"docs_tools_{name}", ROOT / "docs" / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site built by ``mkdocs build --strict``, tutorials rendered without running them (their runs are
    tests/test_tutorials.py's job); ``make docs`` runs them."""
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "PPGEN_DOCS_EXECUTE": "false", "PPGEN_DOCS_CACHE": str(out / "cache"),
           "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out / "site")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    return out / "site"


class PageParser(HTMLParser):
    """The ids a page defines, the URLs it links to, and what it loads (scripts, stylesheets, fonts, images)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.loads: list[str] = []
        self.inline_scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {key: value or "" for key, value in attrs}
        for key in ("id", "name"):
            if key in attr and tag != "meta":
                self.ids.add(attr[key])
        if tag == "a" and "href" in attr:
            self.links.append(attr["href"])
        if tag in ("script", "img", "iframe", "source") and attr.get("src"):
            self.loads.append(attr["src"])
            self.links.append(attr["src"])
        if tag == "link" and "href" in attr:
            self.links.append(attr["href"])
            if set(attr.get("rel", "").split()) & {"stylesheet", "preconnect", "preload", "icon", "modulepreload"}:
                self.loads.append(attr["href"])
        self._in_script = tag == "script" and not attr.get("src")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.inline_scripts.append(data)


def parse(page: Path) -> PageParser:
    parser = PageParser()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def pages(site: Path) -> list[Path]:
    return sorted(site.rglob("*.html"))


def test_every_page_and_tutorial_is_built(site):
    assert (site / "index.html").is_file()
    for tutorial in sorted((ROOT / "docs" / "tutorials").glob("*.py")):
        page = site / "tutorials" / tutorial.stem / "index.html"
        assert page.is_file(), f"{tutorial.name} is not rendered: add it to the nav in mkdocs.yml"
        assert "jupyter-wrapper" in page.read_text(), f"{tutorial.name} is not rendered as a notebook"
    assert (site / "benchmarks" / "index.html").is_file()


def test_internal_links_and_anchors_resolve(site):
    parsed = {page: parse(page) for page in pages(site)}
    broken = []
    for page, parser in parsed.items():
        base = "file://" + page.as_posix()
        for link in parser.links:
            parts = urlsplit(link)
            if parts.scheme in ("http", "https", "mailto", "data") or parts.netloc:
                continue
            # a root-relative link (404.html has them) is relative to the site's root
            resolved = site.as_posix() + link if link.startswith("/") else urlsplit(urljoin(base, link)).path
            target = Path(unquote(resolved))
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(site)}: {link} (no file)")
                continue
            if parts.fragment and target.suffix == ".html":
                ids = parsed[target].ids if target in parsed else parse(target).ids
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{page.relative_to(site)}: {link} (no anchor)")
    assert not broken, "broken internal links:\n" + "\n".join(broken)


EXTERNAL = re.compile(r"""(?:https?:)?//(?!www\.w3\.org/)[a-z0-9.-]+\.[a-z]{2,}""", re.I)


def test_no_page_loads_anything_from_another_host(site):
    offenders = []
    for page in pages(site):
        parser = parse(page)
        for url in parser.loads:
            if urlsplit(url).netloc or url.startswith("//"):
                offenders.append(f"{page.relative_to(site)} loads {url}")
        for script in parser.inline_scripts:
            for call in re.findall(r"""(?:import\(|src\s*=|fetch\(|importScripts\()\s*["'`]([^"'`]+)""", script):
                if EXTERNAL.match(call):
                    offenders.append(f"{page.relative_to(site)}: an inline script loads {call}")
        if "fonts.googleapis" in page.read_text() or "fonts.gstatic" in page.read_text():
            offenders.append(f"{page.relative_to(site)} refers to Google Fonts")
    for sheet in site.rglob("*.css"):
        text = sheet.read_text(encoding="utf-8", errors="replace")
        for url in re.findall(r"""(?:@import\s+|url\()\s*["']?([^"')\s]+)""", text):
            if EXTERNAL.match(url):
                offenders.append(f"{sheet.relative_to(site)} loads {url}")
    assert not offenders, "\n".join(offenders)


def test_every_public_symbol_has_a_docstring_and_a_reference_entry(site, tmp_path):
    griffe = pytest.importorskip("griffe")  # installed with mkdocstrings, in the test extra
    tree = load_tool("api_tree").build_tree(ROOT, tmp_path / "tree")
    package = griffe.load("ppgen", search_paths=[str(tree)], try_relative_path=False)
    undocumented, missing = [], []
    for module_name, page in PUBLIC_MODULES.items():
        module = importlib.import_module(module_name)
        assert module.__all__, f"{module_name} has no __all__"
        static = package if module_name == "ppgen" else package[module_name.split(".", 1)[1]]
        html = (site / page / "index.html").read_text(encoding="utf-8")
        for name in module.__all__:
            docstring = static[name].docstring
            if docstring is None or not docstring.value.strip():
                undocumented.append(f"{module_name}.{name}")
            if f'id="{module_name}.{name}"' not in html:
                missing.append(f"{module_name}.{name} (in docs/{page}.md)")
    assert not undocumented, f"public names without a docstring: {', '.join(undocumented)}"
    assert not missing, f"public names missing from the API reference: {', '.join(missing)}"


# ---------------------------------------------------------------------------------------------
# The README's pictures


def demo_arguments() -> list[str]:
    """The arguments that `make demo` passes to ppgen, from the Makefile's DEMO variable."""
    match = re.search(r"^DEMO\s*:?=\s*(.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert match, "the Makefile defines no DEMO"
    return shlex.split(match.group(1))


def readme_caption() -> str:
    """The paragraph under the README's pictures."""
    readme = (ROOT / "README.md").read_text()
    after = readme.split("docs/images/demo-latent.png", 1)[1]
    return " ".join(after.split("\n\n", 2)[1].split())


def test_readme_shows_and_names_the_demo_pictures():
    record = json.loads((ROOT / "docs" / "images" / "demo.json").read_text())
    assert record["args"] == demo_arguments(), "the demo changed since the pictures were made: run `make docs`"
    readme = (ROOT / "README.md").read_text()
    for committed in load_tool("demo_pictures").PICTURES.values():
        assert f"docs/images/{committed}" in readme, f"README.md does not show {committed}"
        assert (ROOT / "docs" / "images" / committed).stat().st_size < 200_000, f"{committed} is too large"
    # what the grid shows, in the words of its own title ("decoder means" or "samples")
    shown = record["samples_title"].split(" $")[0]
    assert shown in readme_caption(), f"the README's caption does not say the grid shows {shown}"


def test_readme_pictures_are_what_the_demo_draws_now(tmp_path):
    """The demo rerun (about 17 s of CPU time) draws the committed pictures pixel for pixel, where they were drawn:
    the same torch build on the same CPU instruction set (the Makefile's DEMO fixes one thread)."""
    record = json.loads((ROOT / "docs" / "images" / "demo.json").read_text())
    tool = load_tool("demo_pictures")
    metrics = tool.make_pictures(record["args"], tmp_path)
    assert metrics["samples_title"] == record["samples_title"], "the demo's sample picture shows something else now"
    if tool.platform() != record["platform"]:
        pytest.skip(f"the pictures were drawn with {record['platform']}, this is {tool.platform()}: bitwise equal "
                    "only there; `make docs` redraws them here")
    assert metrics["test_log_likelihood"] == record["test_log_likelihood"], \
        "the demo fits another model now: `make docs` redraws the pictures"
    for committed in tool.PICTURES.values():
        fresh, old = tool.pixels(tmp_path / committed), tool.pixels(ROOT / "docs" / "images" / committed)
        assert fresh.shape == old.shape, f"docs/images/{committed} is stale (size): `make docs` redraws it"
        differ = (fresh != old).any(axis=-1)
        assert not differ.any(), (f"docs/images/{committed} is stale: {differ.sum()} of {differ.size} pixels differ "
                                  f"(by up to {abs(fresh - old).max() * 255:.0f} of 255): `make docs` redraws it")
