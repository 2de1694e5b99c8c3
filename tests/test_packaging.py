"""The installed package, not the source tree: build the wheel, install it into a fresh virtual
environment, and use it from there.

``models/`` and ``inference/`` sit at the top of the repository but install as ``ppgen.models`` and
``ppgen.inference`` through the package-dir mapping in pyproject.toml.  The traps of that mapping are
invisible from the repository root, where an editable install and the current directory both hide
them: a subpackage left out of ``[tool.setuptools] packages`` silently vanishes from the wheel, and a
bare ``models`` package may be installed by mistake.  So these tests build the wheel (offline, without
build isolation: setuptools and wheel come from the ``test`` extra), read its file list, install it
into a new venv (no network, no second copy of torch: a ``.pth`` file makes the dev environment's
site-packages visible) and run ppgen from a directory outside the repository.
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: Source folder -> installed package name (the package-dir mapping the design fixes).
PACKAGE_ROOTS = {"ppgen": "ppgen", "models": "ppgen.models", "inference": "ppgen.inference"}

#: Never copied into the build tree: environments, VCS data and earlier build artefacts.
IGNORED = shutil.ignore_patterns(".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__",
                                 ".pytest_cache", "runs", "site", "*.pyc")


def _clean_env() -> dict[str, str]:
    """The environment for child processes, minus anything that would steer their sys.path."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTHON") and k != "VIRTUAL_ENV"}


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_clean_env(), timeout=300, **kwargs)
    if proc.returncode != 0:
        pytest.fail(f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}\n"
                    f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}")
    return proc


def source_packages() -> dict[str, Path]:
    """Every Python package in the source tree, by installed name: each folder with an ``__init__.py``."""
    found = {}
    for folder, installed in PACKAGE_ROOTS.items():
        root = REPO / folder
        for init in sorted(root.rglob("__init__.py")):
            rel = init.parent.relative_to(root)
            if "__pycache__" in rel.parts:
                continue
            found[".".join((installed, *rel.parts))] = init.parent
    return found


def source_modules() -> set[str]:
    """Every ``.py`` file of those packages, as the path it must have inside the wheel."""
    paths = set()
    for name, folder in source_packages().items():
        for py in folder.glob("*.py"):
            paths.add("/".join((*name.split("."), py.name)))
    return paths


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built once from a copy of the tree so that no build/ or *.egg-info lands in the repository."""
    work = tmp_path_factory.mktemp("build")
    src, dist = work / "src", work / "dist"
    shutil.copytree(REPO, src, ignore=IGNORED)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
          "-q", "-w", str(dist), str(src)], cwd=work)
    wheels = sorted(dist.glob("ppgen-*.whl"))
    assert len(wheels) == 1, f"expected one ppgen wheel, found {[w.name for w in wheels]}"
    return wheels[0]


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> dict[str, Path]:
    """A fresh venv with only the wheel installed; the dev environment's site-packages added by a .pth file."""
    root = tmp_path_factory.mktemp("venv") / "env"
    _run([sys.executable, "-m", "venv", "--without-pip", str(root)])
    bindir = root / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / ("python.exe" if os.name == "nt" else "python")
    # pip from this environment installs into the new one (console scripts get the new interpreter).
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
          "--no-compile", "-q", str(wheel)])
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
                .stdout.strip())
    # Dependencies (torch, pyro, ...) come from the running environment.  Lines of a .pth file are only
    # appended to sys.path: .pth files inside those folders (the editable-install hook) are not processed.
    dev_paths = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (site / "_ppgen_test_deps.pth").write_text("".join(f"{p}\n" for p in dev_paths))
    return {"root": root, "bin": bindir, "python": python, "site": site}


def test_wheel_holds_every_source_package(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = source_packages()
    assert set(PACKAGE_ROOTS.values()) <= set(packages)
    missing = sorted(p for p in packages if "/".join(p.split(".")) + "/__init__.py" not in names)
    assert not missing, f"packages missing from the wheel (add them to [tool.setuptools] packages): {missing}"
    assert not sorted(source_modules() - names), "modules missing from the wheel"


def test_wheel_installs_nothing_under_a_bare_name(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/", 1)[0] for n in names}
    dist_info = {t for t in top if t.endswith(".dist-info")}
    assert len(dist_info) == 1
    assert top - dist_info == {"ppgen"}, f"unexpected top-level entries: {sorted(top - dist_info - {'ppgen'})}"
    for bare in ("models", "inference", "tests", "bench", "docs"):
        assert not any(n.startswith(f"{bare}/") for n in names)


def test_wheel_declares_the_console_script(wheel):
    with zipfile.ZipFile(wheel) as zf:
        (ep_file,) = [n for n in zf.namelist() if n.endswith(".dist-info/entry_points.txt")]
        text = zf.read(ep_file).decode()
    eps = configparser.ConfigParser()
    eps.optionxform = str
    eps.read_string(text)
    assert eps["console_scripts"]["ppgen"].strip() == "ppgen.cli:main"


PROBE = r"""
import importlib.util, json, sys
import torch
import ppgen, ppgen.models, ppgen.inference
try:
    import models
    bare = None
except ModuleNotFoundError as exc:
    bare = exc.name
x = torch.randn(50, 3)
fit = ppgen.fit(ppgen.models.PPCA(x_dim=3, z_dim=1), x, epochs=2, progress=False)
lp = fit.log_prob(x)
print(json.dumps({
    "files": {m: sys.modules[m].__file__
              for m in ("ppgen", "ppgen.models", "ppgen.inference", "ppgen.training.fitting")},
    "ppca": sys.modules[type(fit.model).__module__].__file__,
    "torch": torch.__file__,
    "bare_models": bare,
    "bare_inference_spec": importlib.util.find_spec("inference") is not None,
    "editable_hooks": sorted(m for m in sys.modules if m.startswith("__editable__")),
    "log_prob_shape": list(lp.shape),
    "log_prob_finite": bool(torch.isfinite(lp).all()),
}))
"""


def test_installed_wheel_imports_and_fits(venv, tmp_path):
    out = _run([str(venv["python"]), "-c", PROBE], cwd=tmp_path).stdout
    facts = json.loads(out.strip().splitlines()[-1])
    site = venv["site"].resolve()
    for name, file in facts["files"].items():
        assert Path(file).resolve().is_relative_to(site), f"{name} imported from {file}, not the installed wheel"
    assert Path(facts["ppca"]).resolve().is_relative_to(site)
    # torch came through the .pth file; the dev environment's editable hook did not.
    assert not Path(facts["torch"]).resolve().is_relative_to(site)
    assert facts["editable_hooks"] == []
    assert facts["bare_models"] == "models"
    assert not facts["bare_inference_spec"]
    assert facts["log_prob_shape"] == [50]
    assert facts["log_prob_finite"]


def test_installed_console_script(venv, tmp_path):
    script = venv["bin"] / ("ppgen.exe" if os.name == "nt" else "ppgen")
    assert script.exists()
    if os.name != "nt":
        shebang = script.read_text().splitlines()[0]
        assert str(venv["root"]) in shebang, f"console script runs another interpreter: {shebang}"
    proc = _run([str(script), "--help"], cwd=tmp_path)
    assert "usage: ppgen" in proc.stdout
    assert "fit" in proc.stdout
